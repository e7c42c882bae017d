// Command pushseries sends one sample of one series to a Prometheus remote-write endpoint
// (Cortex/Mimir: POST /api/v1/push) for one tenant. It needs nothing but the standard
// library: the WriteRequest protobuf is encoded by hand and the body is a snappy block made
// of literal elements only (valid snappy, just not compressed).
//
//	pushseries -url http://127.0.0.1:9009/api/v1/push -tenant tenant-a \
//	  -metric kc_smoke_queue_depth -label job=smoke -value 750
//
// Exit codes: 0 pushed (2xx), 1 the endpoint refused it, 2 usage or transport error.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

type labelFlags []string

func (l *labelFlags) String() string     { return strings.Join(*l, ",") }
func (l *labelFlags) Set(s string) error { *l = append(*l, s); return nil }

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendBytesField appends a length-delimited field (wire type 2).
func appendBytesField(b []byte, field int, data []byte) []byte {
	b = appendVarint(b, uint64(field<<3|2))
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

// writeRequest encodes prometheus.WriteRequest{timeseries: [{labels, samples: [{value, ts}]}]}.
func writeRequest(labels [][2]string, value float64, tsMillis int64) []byte {
	var series []byte
	for _, l := range labels {
		var lb []byte
		lb = appendBytesField(lb, 1, []byte(l[0]))
		lb = appendBytesField(lb, 2, []byte(l[1]))
		series = appendBytesField(series, 1, lb)
	}
	var sample []byte
	sample = appendVarint(sample, 1<<3|1) // value: double
	sample = binary.LittleEndian.AppendUint64(sample, math.Float64bits(value))
	sample = appendVarint(sample, 2<<3|0) // timestamp: int64
	sample = appendVarint(sample, uint64(tsMillis))
	series = appendBytesField(series, 2, sample)
	return appendBytesField(nil, 1, series)
}

// snappyBlock frames data as a snappy block of literal elements (at most 64 KiB each).
func snappyBlock(data []byte) []byte {
	out := appendVarint(nil, uint64(len(data)))
	for len(data) > 0 {
		n := len(data)
		if n > 65536 {
			n = 65536
		}
		switch m := n - 1; {
		case m < 60:
			out = append(out, byte(m<<2))
		case m < 256:
			out = append(out, 60<<2, byte(m))
		default:
			out = append(out, 61<<2, byte(m), byte(m>>8))
		}
		out = append(out, data[:n]...)
		data = data[n:]
	}
	return out
}

func main() {
	url := flag.String("url", "", "remote-write URL, e.g. http://127.0.0.1:9009/api/v1/push")
	tenant := flag.String("tenant", "", "X-Scope-OrgID to send (empty: none)")
	metric := flag.String("metric", "", "metric name (__name__)")
	value := flag.Float64("value", 0, "sample value")
	timeout := flag.Duration("timeout", 10*time.Second, "HTTP timeout")
	var extra labelFlags
	flag.Var(&extra, "label", "extra label name=value (repeatable)")
	flag.Parse()
	if *url == "" || *metric == "" {
		fmt.Fprintln(os.Stderr, "usage: pushseries -url URL -metric NAME -value V [-tenant ID] [-label k=v]...")
		os.Exit(2)
	}
	labels := [][2]string{{"__name__", *metric}}
	for _, kv := range extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(os.Stderr, "pushseries: -label %q: expected name=value\n", kv)
			os.Exit(2)
		}
		labels = append(labels, [2]string{k, v})
	}
	// Remote write wants labels sorted by name.
	sort.Slice(labels, func(i, j int) bool { return labels[i][0] < labels[j][0] })
	body := snappyBlock(writeRequest(labels, *value, time.Now().UnixMilli()))
	req, err := http.NewRequest(http.MethodPost, *url, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushseries:", err)
		os.Exit(2)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "keda-conformance-pushseries")
	if *tenant != "" {
		req.Header.Set("X-Scope-OrgID", *tenant)
	}
	resp, err := (&http.Client{Timeout: *timeout}).Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushseries:", err)
		os.Exit(2)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(os.Stderr, "pushseries: %s answered %d: %s\n", *url, resp.StatusCode, strings.TrimSpace(string(msg)))
		os.Exit(1)
	}
	fmt.Printf("pushed %s=%g for tenant %q: %d\n", *metric, *value, *tenant, resp.StatusCode)
}
