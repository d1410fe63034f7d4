package events

import (
	"encoding/binary"
	"fmt"
)

// level is an object of the contract: the event, its usage object, or the
// input tokens details inside usage. Keys mean something only at their level.
type level uint8

const (
	levelTop level = iota
	levelUsage
	levelDetails
)

// kind says how the value of a key is read.
type kind uint8

const (
	kindUnknown   kind = iota // not a contract key at this level: ignored
	kindString                // id or a dimension
	kindTimestamp             // timestamp
	kindStatus                // status_code
	kindCount                 // latency_ms and the token counts
	kindUsage                 // the usage object
	kindDetails               // the input tokens details object
)

// member is what a key names: a field and how to read its value.
type member struct {
	f    field
	kind kind
}

// spelling is one key of the contract at its level, such as workspaceId at the
// top or prompt_tokens in usage; docs/event-contract.md lists them. Every
// spelling of a field names the same member, so a message may mix styles as
// long as values agree. The first ids stand for the start of an object, so
// that the key predicted for "first in usage" has a slot in Decoder.next.
type spelling uint8

const (
	spellNone spelling = iota // an unknown key: audio_tokens, completion_tokens_details, ...
	startTop
	startUsage
	startDetails
	spellID
	spellTimestamp
	spellWorkspaceID
	spellWorkspaceIDCamel
	spellProjectID
	spellProjectIDCamel
	spellAPIKeyID
	spellAPIKeyIDCamel
	spellProvider
	spellModel
	spellEndpoint
	spellStatusCode
	spellStatusCodeCamel
	spellLatencyMs
	spellLatencyMsCamel
	spellUsage
	spellInputTokens
	spellInputTokensCamel
	spellPromptTokens
	spellPromptTokensCamel
	spellOutputTokens
	spellOutputTokensCamel
	spellCompletionTokens
	spellCompletionTokensCamel
	spellTotalTokens
	spellTotalTokensCamel
	spellDetails
	spellDetailsCamel
	spellPromptDetails
	spellPromptDetailsCamel
	spellTextTokens
	spellTextTokensCamel
	spellImageTokens
	spellImageTokensCamel
	spellCachedTokens
	spellCachedTokensCamel
	numSpellings
)

// lookup returns the spelling key is at lvl, spellNone for an unknown key.
func lookup(lvl level, key []byte) spelling {
	switch lvl {
	case levelTop:
		switch string(key) { // the conversion in a switch does not allocate
		case "id":
			return spellID
		case "timestamp":
			return spellTimestamp
		case "workspace_id":
			return spellWorkspaceID
		case "workspaceId":
			return spellWorkspaceIDCamel
		case "project_id":
			return spellProjectID
		case "projectId":
			return spellProjectIDCamel
		case "api_key_id":
			return spellAPIKeyID
		case "apiKeyId":
			return spellAPIKeyIDCamel
		case "provider":
			return spellProvider
		case "model":
			return spellModel
		case "endpoint":
			return spellEndpoint
		case "status_code":
			return spellStatusCode
		case "statusCode":
			return spellStatusCodeCamel
		case "latency_ms":
			return spellLatencyMs
		case "latencyMs":
			return spellLatencyMsCamel
		case "usage":
			return spellUsage
		}
	case levelUsage:
		switch string(key) {
		case "input_tokens":
			return spellInputTokens
		case "inputTokens":
			return spellInputTokensCamel
		case "prompt_tokens":
			return spellPromptTokens
		case "promptTokens":
			return spellPromptTokensCamel
		case "output_tokens":
			return spellOutputTokens
		case "outputTokens":
			return spellOutputTokensCamel
		case "completion_tokens":
			return spellCompletionTokens
		case "completionTokens":
			return spellCompletionTokensCamel
		case "total_tokens":
			return spellTotalTokens
		case "totalTokens":
			return spellTotalTokensCamel
		case "input_tokens_details":
			return spellDetails
		case "inputTokensDetails":
			return spellDetailsCamel
		case "prompt_tokens_details":
			return spellPromptDetails
		case "promptTokensDetails":
			return spellPromptDetailsCamel
		}
	case levelDetails:
		switch string(key) {
		case "text_tokens":
			return spellTextTokens
		case "textTokens":
			return spellTextTokensCamel
		case "image_tokens":
			return spellImageTokens
		case "imageTokens":
			return spellImageTokensCamel
		case "cached_tokens":
			return spellCachedTokens
		case "cachedTokens":
			return spellCachedTokensCamel
		}
	}
	return spellNone
}

// spellings lists, for every spelling, its level, its key and what it
// names. lookup is the same list as a switch, for speed; TestKeyPatterns
// holds the two equal.
var spellings = [numSpellings]struct {
	lvl level
	key string
	m   member
}{
	spellID:                    {levelTop, "id", member{fieldID, kindString}},
	spellTimestamp:             {levelTop, "timestamp", member{fieldTimestamp, kindTimestamp}},
	spellWorkspaceID:           {levelTop, "workspace_id", member{fieldWorkspaceID, kindString}},
	spellWorkspaceIDCamel:      {levelTop, "workspaceId", member{fieldWorkspaceID, kindString}},
	spellProjectID:             {levelTop, "project_id", member{fieldProjectID, kindString}},
	spellProjectIDCamel:        {levelTop, "projectId", member{fieldProjectID, kindString}},
	spellAPIKeyID:              {levelTop, "api_key_id", member{fieldAPIKeyID, kindString}},
	spellAPIKeyIDCamel:         {levelTop, "apiKeyId", member{fieldAPIKeyID, kindString}},
	spellProvider:              {levelTop, "provider", member{fieldProvider, kindString}},
	spellModel:                 {levelTop, "model", member{fieldModel, kindString}},
	spellEndpoint:              {levelTop, "endpoint", member{fieldEndpoint, kindString}},
	spellStatusCode:            {levelTop, "status_code", member{fieldStatusCode, kindStatus}},
	spellStatusCodeCamel:       {levelTop, "statusCode", member{fieldStatusCode, kindStatus}},
	spellLatencyMs:             {levelTop, "latency_ms", member{fieldLatencyMs, kindCount}},
	spellLatencyMsCamel:        {levelTop, "latencyMs", member{fieldLatencyMs, kindCount}},
	spellUsage:                 {levelTop, "usage", member{0, kindUsage}},
	spellInputTokens:           {levelUsage, "input_tokens", member{fieldInputTokens, kindCount}},
	spellInputTokensCamel:      {levelUsage, "inputTokens", member{fieldInputTokens, kindCount}},
	spellPromptTokens:          {levelUsage, "prompt_tokens", member{fieldInputTokens, kindCount}},
	spellPromptTokensCamel:     {levelUsage, "promptTokens", member{fieldInputTokens, kindCount}},
	spellOutputTokens:          {levelUsage, "output_tokens", member{fieldOutputTokens, kindCount}},
	spellOutputTokensCamel:     {levelUsage, "outputTokens", member{fieldOutputTokens, kindCount}},
	spellCompletionTokens:      {levelUsage, "completion_tokens", member{fieldOutputTokens, kindCount}},
	spellCompletionTokensCamel: {levelUsage, "completionTokens", member{fieldOutputTokens, kindCount}},
	spellTotalTokens:           {levelUsage, "total_tokens", member{fieldTotalTokens, kindCount}},
	spellTotalTokensCamel:      {levelUsage, "totalTokens", member{fieldTotalTokens, kindCount}},
	spellDetails:               {levelUsage, "input_tokens_details", member{0, kindDetails}},
	spellDetailsCamel:          {levelUsage, "inputTokensDetails", member{0, kindDetails}},
	spellPromptDetails:         {levelUsage, "prompt_tokens_details", member{0, kindDetails}},
	spellPromptDetailsCamel:    {levelUsage, "promptTokensDetails", member{0, kindDetails}},
	spellTextTokens:            {levelDetails, "text_tokens", member{fieldTextTokens, kindCount}},
	spellTextTokensCamel:       {levelDetails, "textTokens", member{fieldTextTokens, kindCount}},
	spellImageTokens:           {levelDetails, "image_tokens", member{fieldImageTokens, kindCount}},
	spellImageTokensCamel:      {levelDetails, "imageTokens", member{fieldImageTokens, kindCount}},
	spellCachedTokens:          {levelDetails, "cached_tokens", member{fieldCachedTokens, kindCount}},
	spellCachedTokensCamel:     {levelDetails, "cachedTokens", member{fieldCachedTokens, kindCount}},
}

// Key prediction. Producers write the keys of an event in a fixed order, so
// the key that followed a given key in the previous message almost always
// follows it again. Decoder.next remembers it, and the member loop first
// compares the message with that key's text, quotes and colon included:
// `"workspace_id":`. If they are equal, the member's key is exactly that
// spelling (the text holds no quote or backslash, so the string cannot end
// elsewhere), and scanning the key and looking it up are skipped. If not, the
// key is read the ordinary way. A prediction only saves work: every message
// decodes the same whatever was predicted.

// keyPattern is the text `"key":` of a spelling as three little-endian words,
// with masks selecting its bytes.
type keyPattern struct {
	word, mask [3]uint64
}

// patternBytes is the longest text a pattern can hold; the longest spelling,
// prompt_tokens_details, needs 24.
const patternBytes = 24

// Tables indexed by spelling, built from spellings: what it names (members),
// its keyPattern, the length of the pattern's text, and its key for rejection
// details. They have 256 entries so that indexing them with a uint8 needs no
// bounds check. spellNone and the object starts name nothing (kindUnknown)
// and have no pattern: matchKey is only called with a real spelling.
var (
	members     [256]member
	patterns    [256]keyPattern
	patternLen  [256]uint8
	spellingKey [256][]byte
)

func init() {
	for s := spellID; s < numSpellings; s++ {
		sp := &spellings[s]
		text := make([]byte, patternBytes)
		n := copy(text, `"`+sp.key+`":`)
		if sp.key == "" || n != len(sp.key)+3 {
			panic(fmt.Sprintf("events: spelling %d has no key or a key too long for a pattern", s))
		}
		p := &patterns[s]
		for w := range 3 {
			p.word[w] = binary.LittleEndian.Uint64(text[8*w:])
			for j := range 8 {
				if 8*w+j < n {
					p.mask[w] |= 0xFF << (8 * j)
				}
			}
		}
		members[s], patternLen[s], spellingKey[s] = sp.m, uint8(n), []byte(sp.key)
	}
}

// matchKey reports whether the text at i is the pattern of spelling s.
func matchKey(b []byte, i int, s spelling) bool {
	if i+patternBytes > len(b) {
		return false // near the end of the message: read the key the ordinary way
	}
	p := &patterns[s]
	return (binary.LittleEndian.Uint64(b[i:])^p.word[0])&p.mask[0]|
		(binary.LittleEndian.Uint64(b[i+8:])^p.word[1])&p.mask[1]|
		(binary.LittleEndian.Uint64(b[i+16:])^p.word[2])&p.mask[2] == 0
}
