package bench

import (
	"io"
	"strings"
)

// markdownTable builds the markdown tables of the reports: a header row and
// its separator, then rows of cells.
type markdownTable struct{ b strings.Builder }

func newMarkdownTable(header []string) *markdownTable {
	t := &markdownTable{}
	t.row(header...)
	t.b.WriteByte('|')
	for range header {
		t.b.WriteString("---|")
	}
	t.b.WriteByte('\n')
	return t
}

func (t *markdownTable) row(cells ...string) {
	t.b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func (t *markdownTable) writeTo(w io.Writer) error {
	_, err := io.WriteString(w, t.b.String())
	return err
}
