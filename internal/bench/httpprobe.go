package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// FreeAddr returns a 127.0.0.1 address with a port nobody listens on now, for
// a child's METRICS_ADDR: the benchmark has to know where to scrape it. (Port
// 0 would be safer against races, but the consumer's address then has to be
// read from its log.)
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// httpTimeout bounds one scrape or probe request, not a profile.
const httpTimeout = 5 * time.Second

var httpClient = &http.Client{Timeout: httpTimeout}

// WaitOK polls http://addr+path (e.g. /readyz) until it answers 200 or ctx
// ends.
func WaitOK(ctx context.Context, addr, path string) error {
	for {
		err := get(ctx, "http://"+addr+path, io.Discard)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s%s: %w", addr, path, errors.Join(err, ctx.Err()))
		case <-time.After(pollInterval):
		}
	}
}

// Gauges scrapes http://addr/metrics and returns the values of the
// unlabelled samples names that the page has.
func Gauges(ctx context.Context, addr string, names ...string) (map[string]float64, error) {
	var b strings.Builder
	if err := get(ctx, "http://"+addr+"/metrics", &b); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		for _, name := range names {
			rest, found := strings.CutPrefix(sc.Text(), name+" ")
			if !found {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return nil, fmt.Errorf("metric %s: %w", name, err)
			}
			out[name] = v
		}
	}
	return out, sc.Err()
}

// CPUProfile fetches a CPU profile of d from the consumer's
// /debug/pprof/profile (DEBUG_PPROF=true) into path.
func CPUProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		f.Close()
		return err
	}
	resp, err := http.DefaultClient.Do(req) // no client timeout: the answer takes d
	if err == nil {
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s (is DEBUG_PPROF=true supported by this consumer?)", url, resp.Status)
		} else {
			_, err = io.Copy(f, resp.Body)
		}
		resp.Body.Close()
	}
	return errors.Join(err, f.Close())
}

func get(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
