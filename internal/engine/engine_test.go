package engine_test

import (
	"context"
	"net"
	"testing"

	"github.com/lampgw/lampgw/internal/engine"
)

func TestMosquittoStartsAndKillEndsIt(t *testing.T) {
	p, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: t.TempDir()})
	engine.Require(t, err)
	engine.Cleanup(t, p)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatalf("dial %s: %v", p.Addr, err)
	}
	c.Close()
	p.Kill()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returned before the process exited")
	}
	if _, err := net.Dial("tcp", p.Addr); err == nil {
		t.Fatalf("%s still accepts after Kill", p.Addr)
	}
}

func TestMosquittoBadConfigIsAnError(t *testing.T) {
	_, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: t.TempDir(), Config: "no_such_option 1\n"})
	if err == nil {
		t.Fatal("a bad config started")
	}
	t.Log(err)
}
