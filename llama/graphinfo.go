package llama

/*
#include <stdlib.h>
#include "graphinfo.h"
#include "train.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// GraphTensor describes one tensor of a ggml graph: a node the graph
// computes, or a tensor a node reads. It is plain data, copied out of C, so
// rules about graphs (CheckCUDA) can be written and tested in Go.
type GraphTensor struct {
	Op        string   // ggml_op_desc: "MUL_MAT", "ACC", unary and GLU ops by name ("SILU", "SWIGLU")
	Type      string   // ggml type name: "f32", "q4_0", ...
	Ne        [4]int64 // elements per dimension
	Nb        [4]uint64
	BlockSize int64  // elements per block of Type
	TypeSize  uint64 // bytes per block of Type
	OpParams  [16]int32
	Node      bool // computed by the graph (not a leaf, a weight or an outside input)
	View      bool
	Param     bool // a trainable parameter
	Name      string
	Src       []*GraphTensor // sources in ggml's order; nil where a slot is empty
}

// Graph is the tensors of one graph, sources before the nodes reading them.
type Graph struct {
	Tensors []*GraphTensor
}

// Nodes are the tensors the graph computes, in execution order.
func (g *Graph) Nodes() []*GraphTensor {
	var out []*GraphTensor
	for _, t := range g.Tensors {
		if t.Node {
			out = append(out, t)
		}
	}
	return out
}

// Elements is the number of values.
func (t *GraphTensor) Elements() int64 { return t.Ne[0] * t.Ne[1] * t.Ne[2] * t.Ne[3] }

// RowSize is the bytes of one row of Ne[0] values (ggml_row_size).
func (t *GraphTensor) RowSize() uint64 { return t.TypeSize * uint64(t.Ne[0]/t.BlockSize) }

// isContiguousN is ggml_is_contiguous_n: the tensor's data is contiguous
// except for gaps allowed between the dimensions above n.
func (t *GraphTensor) isContiguousN(n int) bool {
	next := t.TypeSize
	if t.Ne[0] != t.BlockSize && t.Nb[0] != next {
		return false
	}
	next *= uint64(t.Ne[0] / t.BlockSize)
	for i := 1; i < 4; i++ {
		if t.Ne[i] != 1 {
			if i > n {
				if t.Nb[i] != next {
					return false
				}
				next *= uint64(t.Ne[i])
			} else {
				// this dimension does not need to be contiguous
				next = uint64(t.Ne[i]) * t.Nb[i]
			}
		}
	}
	return true
}

// Contiguous is ggml_is_contiguous (= ggml_is_contiguous_0).
func (t *GraphTensor) Contiguous() bool { return t.isContiguousN(0) }

// ContiguousRows is ggml_is_contiguous_rows: each row's elements are
// adjacent (rows themselves may be strided).
func (t *GraphTensor) ContiguousRows() bool {
	return t.Ne[0] == t.BlockSize || t.Nb[0] == t.TypeSize
}

// Contiguous1 is ggml_is_contiguous_1: contiguous except for gaps between
// rows.
func (t *GraphTensor) Contiguous1() bool { return t.isContiguousN(1) }

// Permuted is ggml_is_permuted: the strides are not in increasing order.
func (t *GraphTensor) Permuted() bool {
	return t.Nb[0] > t.Nb[1] || t.Nb[1] > t.Nb[2] || t.Nb[2] > t.Nb[3]
}

// Transposed is ggml_is_transposed.
func (t *GraphTensor) Transposed() bool { return t.Nb[0] > t.Nb[1] }

// SameShape is ggml_are_same_shape.
func (t *GraphTensor) SameShape(o *GraphTensor) bool { return t.Ne == o.Ne }

// CanRepeat is ggml_can_repeat: o's shape is a whole multiple of t's in
// every dimension (t broadcasts over o).
func (t *GraphTensor) CanRepeat(o *GraphTensor) bool {
	if t.Elements() == 0 {
		return o.Elements() == 0
	}
	for i := 0; i < 4; i++ {
		if o.Ne[i]%t.Ne[i] != 0 {
			return false
		}
	}
	return true
}

// String names the tensor for messages: op, name, type and shape.
func (t *GraphTensor) String() string {
	return fmt.Sprintf("%s %q (%s %v)", t.Op, t.Name, t.Type, t.Ne)
}

// graphFromC converts rows copied out of C, whose src fields index rows.
func graphFromC(rows []C.cp_graph_tensor) (*Graph, error) {
	g := &Graph{Tensors: make([]*GraphTensor, len(rows))}
	for i := range rows {
		r := &rows[i]
		t := &GraphTensor{
			Op:        C.GoString(&r.op_name[0]),
			Type:      C.GoString(&r.type_name[0]),
			BlockSize: int64(r.block_size),
			TypeSize:  uint64(r.type_size),
			Node:      r.is_node != 0,
			View:      r.is_view != 0,
			Param:     r.is_param != 0,
			Name:      C.GoString(&r.name[0]),
		}
		for d := 0; d < 4; d++ {
			t.Ne[d] = int64(r.ne[d])
			t.Nb[d] = uint64(r.nb[d])
		}
		for j := range t.OpParams {
			t.OpParams[j] = int32(r.op_params[j])
		}
		last := -1
		for j := 0; j < C.CP_GRAPH_MAX_SRC; j++ {
			if r.src[j] >= 0 {
				last = j
			}
		}
		for j := 0; j <= last; j++ {
			k := int(r.src[j])
			if k < 0 {
				t.Src = append(t.Src, nil)
				continue
			}
			switch {
			case k == i: // a copy into itself (ggml_cast)
				t.Src = append(t.Src, t)
			case k > i:
				return nil, fmt.Errorf("graph: tensor %d reads tensor %d, which comes later", i, k)
			default:
				t.Src = append(t.Src, g.Tensors[k])
			}
		}
		g.Tensors[i] = t
	}
	return g, nil
}

// GraphKind selects one of a Trainer's graphs.
type GraphKind int

// The graphs a Trainer computes.
const (
	GraphStep     GraphKind = C.CP_GRAPH_STEP      // forward, loss and backward pass of one batch
	GraphAdamW    GraphKind = C.CP_GRAPH_ADAMW     // the optimizer step
	GraphGradNorm GraphKind = C.CP_GRAPH_GRAD_NORM // the gradient norm used for clipping
)

// Graph builds, without computing, the trainer's graph of the given kind
// for a batch of seqs sequences holding tokens tokens in all (used by the
// step graph only), and describes it.
func (t *Trainer) Graph(kind GraphKind, tokens, seqs int) (*Graph, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return nil, fmt.Errorf("trainer graph: %w", ErrClosed)
	}
	if kind == GraphStep && (tokens < 1 || tokens > t.max || seqs < 1 || seqs > tokens) {
		return nil, fmt.Errorf("trainer graph: %d tokens in %d sequences; this trainer takes 1 to %d tokens", tokens, seqs, t.max)
	}
	eb := newErrBuf()
	defer eb.free()
	var n C.int32_t
	if C.cp_train_graph(t.c, C.int32_t(kind), C.int32_t(tokens), C.int32_t(seqs), &n, eb.p, errBufLen) != 0 {
		return nil, fmt.Errorf("%w: trainer graph: %s", ErrTrain, eb)
	}
	rows := make([]C.cp_graph_tensor, int(n))
	if n > 0 {
		rows = rows[:C.cp_train_graph_rows(t.c, &rows[0], n)]
	}
	return graphFromC(rows)
}

// RecordedGraph returns the nodes the context has computed since it was
// created or since the last call (ContextOptions.RecordGraph), and starts
// a new record.
func (c *Context) RecordedGraph() (*Graph, error) {
	if c.c == nil {
		return nil, fmt.Errorf("recorded graph: %w", ErrClosed)
	}
	if c.recorder == nil {
		return nil, fmt.Errorf("recorded graph: the context was created without RecordGraph")
	}
	n := int(C.cp_graph_recorder_len(c.recorder))
	rows := make([]C.cp_graph_tensor, n)
	if n > 0 {
		C.cp_graph_recorder_get(c.recorder, (*C.cp_graph_tensor)(unsafe.Pointer(&rows[0])), C.int32_t(n))
	}
	C.cp_graph_recorder_reset(c.recorder)
	return graphFromC(rows)
}
