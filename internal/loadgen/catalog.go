package loadgen

import (
	"math"
	"math/rand/v2"
)

// The catalog: who calls what. Weights are relative; the shape (a few large
// tenants, image generation next to chat and embeddings, a long tail of error
// statuses) follows what an AI gateway sees, the exact numbers are invented.

type project struct {
	id   string
	keys []string
}

type workspace struct {
	id       string
	weight   int
	projects []project
}

var workspaces = []workspace{
	{"ws_acme", 40, []project{{"proj_web", []string{"key_7f3a", "key_19c2"}}, {"proj_mobile", []string{"key_a0d4"}}, {"proj_batch", []string{"key_5b6e"}}}},
	{"ws_globex", 25, []project{{"proj_studio", []string{"key_c3e1", "key_d802"}}, {"proj_search", []string{"key_0e9f"}}}},
	{"ws_initech", 15, []project{{"proj_tps", []string{"key_4417"}}, {"proj_support", []string{"key_88ab"}}}},
	{"ws_umbrella", 12, []project{{"proj_lab", []string{"key_e2f0", "key_6c1d"}}}},
	{"ws_hooli", 8, []project{{"proj_nucleus", []string{"key_b7a9"}}, {"proj_xyz", []string{"key_2d53"}}}},
}

type usageKind uint8

const (
	usageImage usageKind = iota
	usageChat
	usageEmbedding
)

type model struct {
	provider, name, endpoint string
	weight                   int
	kind                     usageKind
	// imageOutputs are the output-token counts of one generated image at the
	// model's sizes and qualities; zero-length for non-image models.
	imageOutputs []uint64
	// imageInput says whether calls may carry input images (reference images
	// for image models, vision for chat models).
	imageInput bool
	// latency bounds of a successful call, milliseconds (log-uniform between).
	latencyLo, latencyHi float64
}

var models = []model{
	// gpt-image-1 output tokens per image: low/medium/high quality at 1024x1024
	// and at 1536x1024, per OpenAI's pricing table.
	{"openai", "gpt-image-1", "images.generations", 14, usageImage, []uint64{272, 1056, 4160, 408, 1584, 6240}, true, 3000, 45000},
	// dall-e-3 bills per image; the gateway still reports prompt tokens.
	{"openai", "dall-e-3", "images.generations", 5, usageImage, []uint64{0}, false, 6000, 25000},
	{"google", "gemini-2.5-flash-image", "images.generations", 6, usageImage, []uint64{1290}, true, 2500, 15000},
	{"openai", "gpt-4o", "chat.completions", 18, usageChat, nil, true, 300, 12000},
	{"openai", "gpt-4o-mini", "chat.completions", 14, usageChat, nil, true, 200, 6000},
	{"anthropic", "claude-sonnet-4-5", "chat.completions", 12, usageChat, nil, true, 400, 20000},
	{"anthropic", "claude-haiku-4-5", "chat.completions", 6, usageChat, nil, false, 200, 5000},
	{"google", "gemini-2.5-flash", "chat.completions", 7, usageChat, nil, true, 250, 8000},
	{"openai", "text-embedding-3-small", "embeddings", 14, usageEmbedding, nil, false, 25, 400},
	{"google", "text-embedding-004", "embeddings", 4, usageEmbedding, nil, false, 30, 500},
}

// Shares of the event mix that the Config does not expose.
const (
	errorShare         = 0.04 // calls that fail with a 4xx/5xx
	errorWithUsage     = 0.3  // failed calls that still report prompt tokens
	missingStatusShare = 0.03 // successful calls sent without status_code (= success)
	missingTotalShare  = 0.1  // usage without total_tokens (= input + output)
	epochShare         = 0.1  // timestamps as integer epoch milliseconds
	offsetShare        = 0.05 // RFC3339 timestamps with a non-UTC offset
	visionShare        = 0.2  // chat calls with image input
	cachedShare        = 0.3  // chat calls with a prompt-cache hit
	imageEditShare     = 0.3  // image calls with a reference image as input
)

// errorStatuses is weighted by repetition: rate limits dominate.
var errorStatuses = []int{400, 401, 403, 404, 408, 413, 429, 429, 429, 500, 502, 503, 503}

var (
	workspaceCDF = cdf(len(workspaces), func(i int) int { return workspaces[i].weight })
	modelCDF     = cdf(len(models), func(i int) int { return models[i].weight })
)

func cdf(n int, weight func(int) int) []int {
	out := make([]int, n)
	sum := 0
	for i := range out {
		sum += weight(i)
		out[i] = sum
	}
	return out
}

// pick draws an index from a cumulative weight table.
func pick(r *rand.Rand, cdf []int) int {
	x := r.IntN(cdf[len(cdf)-1])
	for i, c := range cdf {
		if x < c {
			return i
		}
	}
	return len(cdf) - 1
}

// logUniform draws from [lo, hi] with a log-uniform density: small values are
// common, large ones rare, as with prompt sizes and latencies.
func logUniform(r *rand.Rand, lo, hi float64) uint64 {
	return uint64(math.Round(lo * math.Exp(r.Float64()*math.Log(hi/lo))))
}

// fillUsage draws a successful call's token counts. The parts always add up:
// text + image = input and cached <= input.
func fillUsage(r *rand.Rand, m *model, u *usage) {
	switch m.kind {
	case usageImage:
		u.text = logUniform(r, 8, 300)
		if m.imageInput && r.Float64() < imageEditShare {
			u.image = 65 + 129*uint64(r.IntN(8)) // 1-8 reference tiles
		}
		images := uint64(1 + r.IntN(2))
		u.output = images * m.imageOutputs[r.IntN(len(m.imageOutputs))]
	case usageChat:
		u.text = logUniform(r, 20, 16000)
		if m.imageInput && r.Float64() < visionShare {
			u.image = 85 + 170*uint64(r.IntN(6))
		}
		if r.Float64() < cachedShare && u.text+u.image >= 1024 {
			// Providers cache in 128-token increments from 1024 tokens up.
			u.cached = 1024 + 128*uint64(r.IntN(int((u.text+u.image-1024)/128)+1))
		}
		u.output = logUniform(r, 5, 2500)
	case usageEmbedding:
		u.text = logUniform(r, 3, 8000)
	}
	u.input = u.text + u.image
	u.total = u.input + u.output
}
