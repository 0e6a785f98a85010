// Package deploytest reads lampgw's deployment files (Dockerfile,
// .dockerignore, docker-compose.yml) the way Docker would, so that tests
// can check them on a machine without a Docker engine, as CI is.
//
// It models what Docker runs for each compose service: the image's
// ENTRYPOINT, CMD, ENV and HEALTHCHECK from the Dockerfile's last stage,
// overridden by the service's entrypoint, command, environment and
// healthcheck, as a Container. The flags in a Container's Argv are for
// the binary's own parser; checking them is the job of that binary's test
// package (cmd/lampgw, cmd/lampsim), since a package main cannot be
// imported.
//
// The compose file is loaded with compose-go, the loader of `docker
// compose` itself, so that what parses here parses there. The Dockerfile
// is read by a small line parser (see ParseDockerfile) that refuses what
// it does not model, rather than a dependency on BuildKit.
package deploytest
