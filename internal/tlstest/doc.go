// Package tlstest makes throwaway certificates for tests: a CA, and server
// and client certificates it signs, as values and as PEM files in a test's
// temporary directory. Keys are ECDSA P-256, which is fast to generate;
// every certificate gets a random serial number, so a test can tell which
// one a handshake presented.
package tlstest
