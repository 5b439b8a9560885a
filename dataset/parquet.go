package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// parquetBatch is how many rows are decoded per ReadRows call: large enough
// to amortize the call, small enough that a batch of long rows stays cheap.
const parquetBatch = 64

// openParquetFile opens only the footer; pages are read lazily, so opening a
// multi-gigabyte file is cheap.
func openParquetFile(path string) (*os.File, *parquet.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := checkInputMode(path, st.Mode()); err != nil {
		f.Close()
		return nil, nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size(),
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(256<<10),
	)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	return f, pf, nil
}

// parquetReader streams a Parquet file one row group at a time and turns each
// row into a JSON object through the file's own schema, so any column layout
// works, including nested lists of structs such as chat messages.
type parquetReader struct {
	rowBuilder
	f      *os.File
	pf     *parquet.File
	groups []parquet.RowGroup
	group  int
	rows   parquet.Rows // current row group, nil between groups
	buf    []parquet.Row
	n, i   int
	index  int64
}

func openParquet(path string, opts ReadOptions, ex *fieldFinder) (Reader, error) {
	f, pf, err := openParquetFile(path)
	if err != nil {
		return nil, err
	}
	return &parquetReader{
		rowBuilder: rowBuilder{name: path, opts: opts, ex: ex},
		f:          f,
		pf:         pf,
		groups:     pf.RowGroups(),
		buf:        make([]parquet.Row, parquetBatch),
	}, nil
}

// Next implements Reader.
func (p *parquetReader) Next() (Row, error) {
	if p.err != nil {
		return Row{}, p.err
	}
	if p.f == nil {
		return Row{}, errClosed
	}
	for {
		if p.i < p.n {
			prow := p.buf[p.i]
			p.i++
			index := p.index
			p.index++
			obj, reason := p.toJSON(prow)
			if reason != "" {
				re := &RowError{Source: p.name, Line: index + 1, Reason: reason}
				if p.opts.SkipBad {
					p.skips.add(re)
					continue
				}
				return Row{}, re
			}
			row, ok, rerr := p.build(obj, index, index+1)
			if rerr != nil {
				return Row{}, rerr
			}
			if ok {
				return row, nil
			}
			continue
		}
		if p.rows == nil {
			if p.group >= len(p.groups) {
				return Row{}, io.EOF
			}
			p.rows = p.groups[p.group].Rows()
			p.group++
		}
		n, err := p.rows.ReadRows(p.buf)
		p.n, p.i = n, 0
		if errors.Is(err, io.EOF) {
			p.rows.Close()
			p.rows = nil
		} else if err != nil {
			return Row{}, p.fail(fmt.Errorf("%s: row group %d near row %d: %w", p.name, p.group, p.index+1, err))
		}
	}
}

// toJSON reconstructs row as a generic map and encodes it. Reconstruct panics
// when a row does not match the schema, which must not crash a long run, so
// the panic becomes a row error.
func (p *parquetReader) toJSON(row parquet.Row) (obj []byte, reason string) {
	defer func() {
		if r := recover(); r != nil {
			obj, reason = nil, fmt.Sprintf("cannot decode Parquet row: %v", r)
		}
	}()
	var v any
	if err := p.pf.Schema().Reconstruct(&v, row); err != nil {
		return nil, fmt.Sprintf("cannot decode Parquet row: %v", err)
	}
	obj, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Sprintf("cannot convert Parquet row to JSON: %v", err)
	}
	return obj, ""
}

// Close implements Reader.
func (p *parquetReader) Close() error {
	if p.f == nil {
		return nil
	}
	if p.rows != nil {
		p.rows.Close()
		p.rows = nil
	}
	err := p.f.Close()
	p.f = nil
	return err
}
