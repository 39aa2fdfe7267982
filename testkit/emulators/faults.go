package emulators

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Fault is what a Proxy does with a request.
type Fault int

const (
	Pass Fault = iota // forward it to the server
	Fail              // answer 500 Internal Server Error
	Drop              // close the connection without an answer
	Hold              // hold it until the client gives up or the test ends
)

// Proxy is an HTTP proxy in front of an emulator that fails requests as
// the test says: the client code under test talks to a real server, and
// the faults are the network's and the server's.
type Proxy struct {
	URL string

	mu    sync.Mutex
	rule  func(*http.Request) Fault
	seen  map[Fault]int
	held  chan *http.Request
	close chan struct{}
}

// Faulty puts a Proxy in front of one store's emulator ("s3" or "gs") and
// points the store's environment variable at it for the rest of the test.
// It passes every request until Set gives it a rule.
func (e *Emulators) Faulty(t testing.TB, scheme string) *Proxy {
	t.Helper()
	target := e.S3URL
	if scheme == "gs" {
		target = e.GCSURL
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{seen: map[Fault]int{}, held: make(chan *http.Request, 100), close: make(chan struct{})}
	forward := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		f := Pass
		if p.rule != nil {
			f = p.rule(r)
		}
		p.seen[f]++
		p.mu.Unlock()
		switch f {
		case Fail:
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected by the test</Message></Error>`))
		case Drop:
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		case Hold:
			select {
			case p.held <- r:
			default:
			}
			select {
			case <-r.Context().Done():
			case <-p.close:
			}
		default:
			forward.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() {
		close(p.close)
		srv.Close()
	})
	p.URL = srv.URL
	if scheme == "gs" {
		pu, _ := url.Parse(srv.URL)
		t.Setenv("STORAGE_EMULATOR_HOST", pu.Host)
	} else {
		t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	}
	return p
}

// Set makes rule decide each request's fate from now on (nil: pass all).
func (p *Proxy) Set(rule func(*http.Request) Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = rule
}

// Count is how many requests met fault f.
func (p *Proxy) Count(f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[f]
}

// Held gives each request the proxy starts to hold.
func (p *Proxy) Held() <-chan *http.Request { return p.held }
