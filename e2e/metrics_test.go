package e2e

import "github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"

// scrape reads the process's /metrics and returns every metric's samples
// summed over their labels.
func (c *consumer) scrape() (map[string]float64, error) {
	body, err := c.Scrape()
	if err != nil {
		return nil, err
	}
	return servicetest.ParseMetrics(body)
}
