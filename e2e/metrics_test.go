package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// servingMessage is the log message that names the consumer's /metrics
// address (METRICS_ADDR=127.0.0.1:0 lets the kernel pick the port).
const servingMessage = "serving /metrics, /livez, /readyz"

// metricsAddr returns the address the process serves /metrics on, from its
// log, or "" before it logged it.
func (c *consumer) metricsAddr() string {
	for _, line := range strings.Split(c.out.String(), "\n") {
		var l struct{ Message, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == servingMessage {
			return l.Addr
		}
	}
	return ""
}

// scrape reads the process's /metrics and returns every metric's samples
// summed over their labels.
func (c *consumer) scrape() (map[string]float64, error) {
	addr := c.metricsAddr()
	if addr == "" {
		return nil, fmt.Errorf("%s has not logged %q yet", c.name, servingMessage)
	}
	cl := http.Client{Timeout: 2 * time.Second}
	res, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	return parseMetrics(res.Body)
}

// parseMetrics sums the samples of each metric of a Prometheus text
// exposition over their labels.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		out[name] += v
	}
	return out, sc.Err()
}
