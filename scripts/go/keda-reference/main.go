// keda-reference runs KEDA's own prometheus scaler (the pinned v2.20.x module) on trigger
// metadata (and the authParams a TriggerAuthentication resolves to) read as JSON lines from
// stdin, and prints what KEDA made of each: the parse error, or the exact request it sent to
// a local recording server. keda-conformance's tests compare
// its Rust reimplementation with this, case by case.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	v2 "k8s.io/api/autoscaling/v2"

	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
)

type input struct {
	Metadata   map[string]string `json:"metadata"`
	AuthParams map[string]string `json:"authParams"`
	MetricType string            `json:"metricType"`
}

type request struct {
	Path    string              `json:"path"`
	Query   map[string][]string `json:"query"`
	Headers [][2]string         `json:"headers"`
}

type output struct {
	OK      bool     `json:"ok"`
	Error   string   `json:"error,omitempty"`
	Value   float64  `json:"value"`
	Request *request `json:"request,omitempty"`
	SendErr string   `json:"sendError,omitempty"`
}

func main() {
	var mu sync.Mutex
	var last *request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hs [][2]string
		for k, vs := range r.Header {
			if k == "Accept-Encoding" || k == "User-Agent" {
				continue
			}
			for _, v := range vs {
				hs = append(hs, [2]string{k, v})
			}
		}
		sort.Slice(hs, func(i, j int) bool { return hs[i][0] < hs[j][0] })
		q := r.URL.Query()
		q.Del("time")
		mu.Lock()
		last = &request{Path: r.URL.Path, Query: q, Headers: hs}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}`)
	}))
	defer srv.Close()

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var c input
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			_ = enc.Encode(output{Error: "bad input: " + err.Error()})
			continue
		}
		md := map[string]string{}
		for k, v := range c.Metadata {
			md[k] = strings.ReplaceAll(v, "{{server}}", srv.URL)
		}
		cfg := &scalersconfig.ScalerConfig{
			TriggerMetadata:   md,
			AuthParams:        c.AuthParams,
			TriggerType:       "prometheus",
			MetricType:        v2.MetricTargetType(c.MetricType),
			GlobalHTTPTimeout: 5 * time.Second,
		}
		s, err := scalers.NewPrometheusScaler(cfg)
		if err != nil {
			_ = enc.Encode(output{Error: err.Error()})
			continue
		}
		mu.Lock()
		last = nil
		mu.Unlock()
		metrics, _, err := s.GetMetricsAndActivity(context.Background(), "s0-prometheus")
		out := output{OK: true}
		if err != nil {
			out.SendErr = err.Error()
		} else if len(metrics) > 0 {
			out.Value = metrics[0].Value.AsApproximateFloat64()
		}
		mu.Lock()
		out.Request = last
		mu.Unlock()
		_ = s.Close(context.Background())
		_ = enc.Encode(out)
	}
}
