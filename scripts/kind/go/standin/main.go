// Command standin is keda-conformance's offline stand-in for a chart's Tempo containers (Tempo
// is AGPL and is never built here). It listens with plain HTTP on every TCP port listed in
// STANDIN_PORTS (default "3200,9095,7946"), answers 200 to any GET or HEAD (so /ready
// readiness probes pass) and serves `tempo_build_info 1` on /metrics. Command-line arguments
// (the chart's -config.file=..., -target=...) are accepted and ignored. Only SIGTERM and
// SIGINT stop it; every other catchable signal (SIGHUP, SIGUSR1, SIGPIPE, ...) is ignored.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const defaultPorts = "3200,9095,7946"

func ports() ([]int, error) {
	spec := strings.TrimSpace(os.Getenv("STANDIN_PORTS"))
	if spec == "" {
		spec = defaultPorts
	}
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := strconv.Atoi(part)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("STANDIN_PORTS: %q is not a TCP port", part)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("STANDIN_PORTS lists no port")
	}
	return out, nil
}

func handler(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/metrics":
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# HELP tempo_build_info keda-conformance stand-in, not Tempo.\n# TYPE tempo_build_info gauge\ntempo_build_info 1\n")
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "ready\n")
	default:
		// Writes (pushes, gRPC over HTTP/1, ...) are accepted and discarded.
		w.WriteHeader(http.StatusOK)
	}
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	ps, err := ports()
	if err != nil {
		log.Fatal(err)
	}
	// Ignore everything but the two stop signals (SIGKILL/SIGSTOP cannot be caught).
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE,
		syscall.SIGQUIT, syscall.SIGALRM, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGWINCH,
		syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP, syscall.SIGURG, syscall.SIGIO,
		syscall.SIGXCPU, syscall.SIGXFSZ)
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	mux := http.NewServeMux()
	mux.HandleFunc("/", handler)
	var servers []*http.Server
	for _, p := range ps {
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			log.Fatalf("listen on :%d: %v", p, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func(p int) {
			if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
				log.Fatalf("serve :%d: %v", p, err)
			}
		}(p)
	}
	log.Printf("keda-conformance tempo stand-in listening on %v (args ignored: %q)", ps, os.Args[1:])
	sig := <-stop
	log.Printf("%v: shutting down", sig)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func(s *http.Server) { defer wg.Done(); _ = s.Shutdown(ctx) }(srv)
	}
	wg.Wait()
}
