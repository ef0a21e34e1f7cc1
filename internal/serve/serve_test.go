package serve

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request in flight when the context ends still gets its answer; the
// server then stops and Run returns nil.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	h := &HTTP{Name: "test", Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			io.WriteString(w, "done")
		})}}
	if err := h.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := h.BoundAddr()
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("bound address %q", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.Run(ctx) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	cancel()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if s := <-got; s != "done" {
		t.Fatalf("request in flight got %q", s)
	}
	if err := <-ran; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := h.Run(context.Background()); err == nil {
		t.Fatal("a second Run was accepted")
	}
}

func TestListenError(t *testing.T) {
	h := &HTTP{Name: "test", Addr: "127.0.0.1:99999", Server: &http.Server{}}
	if err := h.Listen(); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("err = %v", err)
	}
}
