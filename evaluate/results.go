package evaluate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tidwall/gjson"

	"github.com/codeplan-dev/codeplan/dataset"
)

// ReadRows reads every row of a results file. A blank line is ignored, and
// so is an unparsable last line without a newline (a run killed mid-write
// leaves one; the next run drops it and redoes its row). Rows repeating an
// id are dropped (the first wins). Any other bad line is an error naming
// the file and line.
func ReadRows(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var rows []Row
	seen := map[string]bool{}
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		torn := err == io.EOF
		if len(bytes.TrimSpace(b)) > 0 {
			var r Row
			if jerr := json.Unmarshal(b, &r); jerr != nil || r.ID == "" || r.ItemID == "" || r.Mode == "" {
				if torn {
					break
				}
				if jerr == nil {
					jerr = errors.New(`missing "id", "item_id" or "mode"`)
				}
				return nil, fmt.Errorf("%s:%d: not a result row: %v", path, line, jerr)
			}
			if !seen[r.ID] {
				seen[r.ID] = true
				if run := gjson.GetBytes(b, dataset.SettingsField); run.IsObject() {
					r.Run = dataset.Settings{}
					run.ForEach(func(k, v gjson.Result) bool {
						r.Run[k.String()] = v.String()
						return true
					})
				}
				rows = append(rows, r)
			}
		}
		if torn {
			break
		}
	}
	return rows, nil
}
