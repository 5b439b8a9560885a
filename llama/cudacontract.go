package llama

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// The CUDA contract: what the CUDA backend of the pinned ggml (ollama
// v0.17.4, llama.cpp ec98e2002) requires of every op that codeplan's graphs
// contain, written down as data so that a machine without a GPU can check
// those graphs (CheckCUDA). A GPU is lent to this project rarely and
// briefly; a graph that would abort there must fail a test here.
//
// For each op there are two kinds of condition, and the difference matters:
//
//   - supports: ggml_backend_cuda_device_supports_op. When it says no, the
//     scheduler runs the node on the CPU instead (slower, but correct).
//   - requires: what the kernel then needs. A node CUDA accepted that breaks
//     one aborts the process (GGML_ASSERT), or, where the kernel reads its
//     inputs as dense arrays without checking, silently computes garbage.
//
// Every entry cites the file and line of ml/backend/ggml/ggml/src/ggml-cuda/
// in the module it was read from. An op missing from the table is reported
// as unknown: a new op in our graphs has to be read against the kernels
// before it may run on a GPU.

// CUDAIssue is one node of a graph that the CUDA backend would mishandle.
type CUDAIssue struct {
	Node *GraphTensor
	// What the kernel requires and the node breaks.
	Rule string
	// Where the rule is written (file:line in ggml-cuda/).
	At string
	// Abort: the kernel asserts (the process dies); otherwise the kernel
	// computes a wrong result without a word.
	Abort bool
}

func (i CUDAIssue) String() string {
	kind := "wrong result"
	if i.Abort {
		kind = "abort"
	}
	return fmt.Sprintf("%s: %s (%s, %s)", i.Node, i.Rule, i.At, kind)
}

// CUDAReport is what CheckCUDA found in one graph.
type CUDAReport struct {
	// Issues are nodes CUDA accepts and then cannot compute correctly.
	Issues []CUDAIssue
	// Fallbacks counts, per op, the nodes CUDA refuses (supports_op is
	// false), which the scheduler computes on the CPU instead.
	Fallbacks map[string]int
	// FallbackWhy gives, per op, the refusing condition of the first one.
	FallbackWhy map[string]string
	// Unknown lists ops the table does not cover.
	Unknown []string
	// Nodes is the number of nodes checked.
	Nodes int
}

// OK reports whether the graph can run on CUDA without abort or garbage
// and holds no op the table does not know.
func (r CUDAReport) OK() bool { return len(r.Issues) == 0 && len(r.Unknown) == 0 }

// Summary is a one-paragraph description for messages and logs.
func (r CUDAReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d nodes", r.Nodes)
	if len(r.Issues) > 0 {
		fmt.Fprintf(&b, "; %d would fail on CUDA, first: %s", len(r.Issues), r.Issues[0])
	}
	if len(r.Unknown) > 0 {
		fmt.Fprintf(&b, "; ops not in the CUDA table: %s", strings.Join(r.Unknown, ", "))
	}
	if len(r.Fallbacks) > 0 {
		ops := make([]string, 0, len(r.Fallbacks))
		for op, n := range r.Fallbacks {
			ops = append(ops, fmt.Sprintf("%s×%d (%s)", op, n, r.FallbackWhy[op]))
		}
		sort.Strings(ops)
		fmt.Fprintf(&b, "; on the CPU instead: %s", strings.Join(ops, ", "))
	}
	return b.String()
}

// cudaCond is one condition: holds reports whether node n satisfies it.
type cudaCond struct {
	what  string
	at    string
	abort bool // for requires: assert (true) or silent wrong result (false)
	holds func(n *GraphTensor) bool
}

// cudaRule is one op's entry: supports (all must hold, else CPU fallback)
// and requires (checked once supports holds).
type cudaRule struct {
	supports []cudaCond
	requires []cudaCond
}

// Shorthands for the table.
func src(n *GraphTensor, i int) *GraphTensor {
	if i < len(n.Src) {
		return n.Src[i]
	}
	return nil
}

func isType(t *GraphTensor, types ...string) bool {
	if t == nil {
		return false
	}
	for _, ty := range types {
		if t.Type == ty {
			return true
		}
	}
	return false
}

func sup(what, at string, f func(n *GraphTensor) bool) cudaCond {
	return cudaCond{what: what, at: at, holds: f}
}

func assert(what, at string, f func(n *GraphTensor) bool) cudaCond {
	return cudaCond{what: what, at: at, abort: true, holds: f}
}

func silent(what, at string, f func(n *GraphTensor) bool) cudaCond {
	return cudaCond{what: what, at: at, abort: false, holds: f}
}

func allF32(idx ...int) func(n *GraphTensor) bool {
	return func(n *GraphTensor) bool {
		if n.Type != "f32" {
			return false
		}
		for _, i := range idx {
			if !isType(src(n, i), "f32") {
				return false
			}
		}
		return true
	}
}

func contiguous(i int) func(n *GraphTensor) bool {
	return func(n *GraphTensor) bool { s := src(n, i); return s != nil && s.Contiguous() }
}

func always(*GraphTensor) bool { return true }

// elementStrides: every stride is a whole number of elements (binbcast.cu
// divides them by the element size).
func elementStrides(t *GraphTensor) bool {
	if t == nil {
		return true
	}
	for _, nb := range t.Nb {
		if nb%t.TypeSize != 0 {
			return false
		}
	}
	return true
}

// intMax is INT_MAX: cpy.cu keeps byte counts in an int.
const intMax = math.MaxInt32

func nbytes(t *GraphTensor) uint64 {
	// ggml_nbytes for a blocked type: rows × row size, plus the strides of
	// the outer dimensions (as ggml computes it)
	if t.BlockSize == 1 {
		n := t.TypeSize
		for i := 0; i < 4; i++ {
			n += uint64(t.Ne[i]-1) * t.Nb[i]
		}
		return n
	}
	n := t.RowSize()
	for i := 1; i < 4; i++ {
		n += uint64(t.Ne[i]-1) * t.Nb[i]
	}
	return n
}

// viewOps have no kernel: they only reinterpret memory.
var viewOps = map[string]bool{"NONE": true, "RESHAPE": true, "VIEW": true, "PERMUTE": true, "TRANSPOSE": true}

// binary is the rule of the broadcasting element-wise ops (ADD, SUB, MUL,
// DIV) in binbcast.cu.
func binary() cudaRule {
	return cudaRule{
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4822-4835", always)},
		requires: []cudaCond{
			assert("src1 F32 or F16", "binbcast.cu:374", func(n *GraphTensor) bool { return isType(src(n, 1), "f32", "f16") }),
			silent("types (src0, src1, dst) one of (F32, F32, F32), (F16, F16, F16), (F16, F32, F16), (F16, *, F32): an F32 src0 with an F16 src1 reads the F16 data as float", "binbcast.cu:376-388", func(n *GraphTensor) bool {
				s0, s1 := src(n, 0), src(n, 1)
				switch {
				case s0.Type == "f32" && s1.Type == "f32" && n.Type == "f32":
					return true
				case s0.Type == "f16" && n.Type == "f16" && isType(s1, "f16", "f32"):
					return true
				case s0.Type == "f16" && n.Type == "f32":
					return true
				}
				return false
			}),
			assert("all strides whole elements", "binbcast.cu:239-252", func(n *GraphTensor) bool {
				return elementStrides(n) && elementStrides(src(n, 0)) && elementStrides(src(n, 1))
			}),
			assert("innermost dimension dense in dst, src0 and src1 (s0 = s00 = s10 = 1)", "binbcast.cu:254-256", func(n *GraphTensor) bool {
				return n.Nb[0] == n.TypeSize && src(n, 0).Nb[0] == src(n, 0).TypeSize && (src(n, 1).Nb[0] == src(n, 1).TypeSize || src(n, 1).Ne[0] == 1)
			}),
		},
	}
}

// cudaRules is the table. Keys are GraphTensor.Op (ggml_op_desc), so unary
// and GLU ops appear by their own names.
var cudaRules = map[string]cudaRule{
	"ADD": binary(), "SUB": binary(), "MUL": binary(), "DIV": binary(),
	"ADD1": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4824", always)},
		requires: []cudaCond{assert("src1 a scalar, F32 or F16 (computed as a broadcast add)", "binbcast.cu:374", func(n *GraphTensor) bool {
			return isType(src(n, 1), "f32", "f16") && src(n, 1).Elements() == 1
		})},
	},
	"SCALE": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4828", always)},
		requires: []cudaCond{
			assert("src0 and dst F32", "scale.cu:25-26", allF32(0)),
			silent("src0 and dst contiguous: scale_f32 walks ggml_nelements(src0) values densely", "scale.cu:9,33", func(n *GraphTensor) bool {
				return src(n, 0).Contiguous() && n.Contiguous()
			}),
		},
	},
	"SQR": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4829", always)},
		requires: []cudaCond{assert("src0 contiguous", "unary.cu:136", contiguous(0))},
	},
	"SQRT": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4830", always)},
		requires: []cudaCond{assert("src0 contiguous", "unary.cu:136", contiguous(0))},
	},
	"LOG": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4834", always)},
		requires: []cudaCond{assert("src0 contiguous", "unary.cu:136", contiguous(0))},
	},
	"SILU": {
		supports: []cudaCond{sup("src0 contiguous", "ggml-cuda.cu:4579,4596", contiguous(0))},
		requires: []cudaCond{assert("src0 F32 or F16, same type as dst", "unary.cu:138-140", func(n *GraphTensor) bool {
			return isType(src(n, 0), "f32", "f16") && src(n, 0).Type == n.Type
		})},
	},
	"SWIGLU": {
		supports: []cudaCond{sup("src0 contiguous except between rows", "ggml-cuda.cu:4605,4609", func(n *GraphTensor) bool { return src(n, 0).Contiguous1() })},
		requires: []cudaCond{
			assert("src0 rows dense, dst contiguous", "unary.cu:288-289", func(n *GraphTensor) bool {
				return src(n, 0).Nb[0] == src(n, 0).TypeSize && n.Contiguous()
			}),
			assert("src0 F32 or F16, same type as dst", "unary.cu:291-293", func(n *GraphTensor) bool {
				return isType(src(n, 0), "f32", "f16") && src(n, 0).Type == n.Type
			}),
			assert("split form: src1 contiguous except between rows, rows dense, same row length and type", "unary.cu:298-301", func(n *GraphTensor) bool {
				s1 := src(n, 1)
				if s1 == nil {
					return true
				}
				return s1.Contiguous1() && s1.Nb[0] == s1.TypeSize && s1.Ne[0] == n.Ne[0] && s1.Type == src(n, 0).Type
			}),
		},
	},
	"SILU_BACK": {
		supports: []cudaCond{sup("src0 contiguous and F32", "ggml-cuda.cu:4807-4808", func(n *GraphTensor) bool {
			return src(n, 0).Contiguous() && isType(src(n, 0), "f32")
		})},
		requires: []cudaCond{
			assert("src0 F32 or F16, same type as dst", "unary.cu:508-510", func(n *GraphTensor) bool {
				return isType(src(n, 0), "f32", "f16") && src(n, 0).Type == n.Type
			}),
			silent("src1 (the forward input x; src0 is the gradient) contiguous: read as a dense array of ggml_nelements(src0)", "unary.cu:513-515", contiguous(1)),
		},
	},
	"MUL_MAT": {
		supports: []cudaCond{
			sup("not (src1 F16 and src0 not F16)", "ggml-cuda.cu:4633", func(n *GraphTensor) bool {
				return !(isType(src(n, 1), "f16") && !isType(src(n, 0), "f16"))
			}),
			sup("src1 batch dimensions ne2*ne3 at most 1024 (the module's patch)", "ggml-cuda.cu:4636", func(n *GraphTensor) bool {
				return src(n, 1).Ne[2]*src(n, 1).Ne[3] <= 1024
			}),
			sup("src0 of a type with CUDA matrix kernels", "ggml-cuda.cu:4652-4680", func(n *GraphTensor) bool {
				return isType(src(n, 0), "f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "mxfp4",
					"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq1_m", "iq1_s", "iq2_s", "iq2_xs", "iq2_xxs", "iq3_s", "iq3_xxs", "iq4_nl", "iq4_xs")
			}),
		},
		// The kernel is chosen from src0's type and src1's column count
		// alone (ggml-cuda.cu:2316-2399); each direct kernel asserts a
		// dense src1 row, so a src1 strided in dimension 0 aborts whichever
		// is picked. A transposed src0 takes the generic path, which copies
		// it row by row: slow, but correct.
		requires: []cudaCond{
			assert("src1 rows dense (nb0 = element size)", "mmq.cu:86, mmvq.cu:621, mmvf.cu:580, mmf.cu:21, ggml-cuda.cu:1994", func(n *GraphTensor) bool {
				s1 := src(n, 1)
				return s1.Nb[0] == s1.TypeSize
			}),
			assert("dst contiguous (batched cuBLAS)", "ggml-cuda.cu:1981", func(n *GraphTensor) bool { return n.Contiguous() }),
		},
	},
	"OUT_PROD": {
		supports: []cudaCond{sup("dst, src0 and src1 F32", "ggml-cuda.cu:4682-4683", allF32(0, 1))},
		requires: []cudaCond{
			assert("shapes: src0.ne1 == src1.ne1, dst = src0.ne0 × src1.ne0", "out-prod.cu:15-17", func(n *GraphTensor) bool {
				s0, s1 := src(n, 0), src(n, 1)
				return s0.Ne[1] == s1.Ne[1] && n.Ne[0] == s0.Ne[0] && n.Ne[1] == s1.Ne[0]
			}),
			assert("dst batch dims multiples of src0's and equal to src1's", "out-prod.cu:19-23", func(n *GraphTensor) bool {
				s0, s1 := src(n, 0), src(n, 1)
				return n.Ne[2]%s0.Ne[2] == 0 && n.Ne[3]%s0.Ne[3] == 0 && n.Ne[2] == s1.Ne[2] && n.Ne[3] == s1.Ne[3]
			}),
			assert("src1 dense along the dimension cuBLAS reads (nb0 = 4, or nb1 = 4 when transposed)", "out-prod.cu:43", func(n *GraphTensor) bool {
				s1 := src(n, 1)
				if s1.Transposed() {
					return s1.Nb[1] == 4
				}
				return s1.Nb[0] == 4
			}),
			silent("src0 rows dense (cuBLAS gets only the row stride)", "out-prod.cu:34 (lda = nb01)", func(n *GraphTensor) bool { return src(n, 0).Nb[0] == 4 }),
		},
	},
	"ACC": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4877-4878", always)},
		requires: []cudaCond{
			assert("src0, src1 and dst F32", "acc.cu:47-49", allF32(0, 1)),
			assert("src1 contiguous", "acc.cu:51", contiguous(1)),
			assert("dst rows dense", "acc.cu:52", func(n *GraphTensor) bool { return n.Nb[0] == n.TypeSize }),
			assert("dst contiguously allocated", "acc.cu:53", func(n *GraphTensor) bool { return n.Contiguous() }),
		},
	},
	"GET_ROWS": {
		supports: []cudaCond{sup("src0 F16, F32, BF16, I32, Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0", "ggml-cuda.cu:4684-4700", func(n *GraphTensor) bool {
			return isType(src(n, 0), "f16", "f32", "bf16", "i32", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0")
		})},
		requires: []cudaCond{
			assert("src1 (the row ids) I32 with ne3 = 1", "getrows.cu:246-247", func(n *GraphTensor) bool {
				return isType(src(n, 1), "i32") && src(n, 1).Ne[3] == 1
			}),
			assert("rows dense in src0, src1 and dst", "getrows.cu:249-251", func(n *GraphTensor) bool {
				s0, s1 := src(n, 0), src(n, 1)
				return (s0.BlockSize > 1 || s0.Nb[0] == s0.TypeSize) && s1.Nb[0] == s1.TypeSize && n.Nb[0] == n.TypeSize
			}),
			assert("dst F32, I32, F16 or BF16", "getrows.cu:233", func(n *GraphTensor) bool { return isType(n, "f32", "i32", "f16", "bf16") }),
			assert("quantized src0: row length even", "getrows.cu:116", func(n *GraphTensor) bool { return src(n, 0).BlockSize == 1 || src(n, 0).Ne[0]%2 == 0 }),
		},
	},
	"GET_ROWS_BACK": {
		supports: []cudaCond{sup("dst and src0 F32, dst 2-D", "ggml-cuda.cu:4701-4703", func(n *GraphTensor) bool {
			return n.Type == "f32" && isType(src(n, 0), "f32") && n.Ne[2] == 1 && n.Ne[3] == 1
		})},
		requires: []cudaCond{
			assert("src0 F32, src1 I32, dst F32", "getrows.cu:269-271", func(n *GraphTensor) bool {
				return isType(src(n, 0), "f32") && isType(src(n, 1), "i32") && n.Type == "f32"
			}),
			assert("src0, src1 and dst contiguous", "getrows.cu:273-275", func(n *GraphTensor) bool {
				return src(n, 0).Contiguous() && src(n, 1).Contiguous() && n.Contiguous()
			}),
			assert("src0, src1 and dst 2-D", "getrows.cu:277-279", func(n *GraphTensor) bool {
				s0, s1 := src(n, 0), src(n, 1)
				return s0.Ne[2]*s0.Ne[3] == 1 && s1.Ne[2]*s1.Ne[3] == 1 && n.Ne[2]*n.Ne[3] == 1
			}),
			assert("at most 65535 rows in dst (the vocabulary, when embeddings train): the grid's y dimension, checked by CUDA_CHECK after the launch", "getrows.cu:282-283, ggml-cuda.cu:2879-2883", func(n *GraphTensor) bool {
				return n.Ne[1] <= 65535
			}),
		},
	},
	"RMS_NORM": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4811-4813", always)},
		requires: []cudaCond{
			assert("src0 and dst F32", "norm.cu:516-517", allF32(0)),
			assert("src0 rows dense", "norm.cu:526", func(n *GraphTensor) bool { return src(n, 0).Nb[0] == 4 }),
			assert("src0 dims 2 and 3 at most 65535 (grid y and z)", "norm.cu:358, ggml-cuda.cu:2879-2883", func(n *GraphTensor) bool {
				return src(n, 0).Ne[2] <= 65535 && src(n, 0).Ne[3] <= 65535
			}),
		},
	},
	"RMS_NORM_BACK": {
		supports: []cudaCond{sup("src0 contiguous, row length a multiple of 32 (WARP_SIZE)", "ggml-cuda.cu:4814-4815", func(n *GraphTensor) bool {
			return src(n, 0).Contiguous() && n.Ne[0]%32 == 0
		})},
		requires: []cudaCond{
			assert("src0 (gradient) contiguous; src0, src1 and dst F32", "norm.cu:692-696", func(n *GraphTensor) bool {
				return src(n, 0).Contiguous() && allF32(0, 1)(n)
			}),
			silent("src1 (the forward input) contiguous: read as dense rows", "norm.cu:206-207 (rms_norm_back_f32)", contiguous(1)),
		},
	},
	"SOFT_MAX": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4855-4856", always)},
		requires: []cudaCond{
			assert("src0 and dst F32; mask (src1) F16 or F32", "softmax.cu:265-268", func(n *GraphTensor) bool {
				return isType(src(n, 0), "f32") && n.Type == "f32" && (src(n, 1) == nil || isType(src(n, 1), "f16", "f32"))
			}),
			silent("src0 and dst contiguous (\"TODO: noncontiguous\")", "softmax.cu:56-65", func(n *GraphTensor) bool { return src(n, 0).Contiguous() && n.Contiguous() }),
			assert("src0 dims 2 and 3 at most 65535 (grid y and z)", "softmax.cu:227, ggml-cuda.cu:2879-2883", func(n *GraphTensor) bool {
				return src(n, 0).Ne[2] <= 65535 && src(n, 0).Ne[3] <= 65535
			}),
		},
	},
	"SOFT_MAX_BACK": {
		supports: []cudaCond{sup("max_bias (op_params[1]) zero", "ggml-cuda.cu:4857-4860", func(n *GraphTensor) bool {
			return math.Float32frombits(uint32(n.OpParams[1])) == 0
		})},
		requires: []cudaCond{
			assert("src0, src1 and dst F32", "softmax.cu:334-336", allF32(0, 1)),
			silent("src0 (gradient) and src1 (forward output) contiguous: read as dense rows", "softmax.cu:172-174 (soft_max_back_f32)", func(n *GraphTensor) bool {
				return src(n, 0).Contiguous() && src(n, 1).Contiguous()
			}),
		},
	},
	"ROPE": {
		supports: []cudaCond{sup("src0 rows dense and contiguous in dims 0-2", "ggml-cuda.cu:4867-4870", func(n *GraphTensor) bool {
			s0 := src(n, 0)
			return s0.Nb[0] == s0.TypeSize && s0.isContiguousN(2)
		})},
		requires: []cudaCond{
			assert("src0 and dst F32 or F16, the same type", "rope.cu:435-439", func(n *GraphTensor) bool {
				return isType(src(n, 0), "f32", "f16") && src(n, 0).Type == n.Type
			}),
			assert("row length even", "rope.cu:307", func(n *GraphTensor) bool { return n.Ne[0]%2 == 0 }),
			silent("dst contiguous (written at row*ne0 + i0)", "rope.cu:71,138", func(n *GraphTensor) bool { return n.Contiguous() }),
		},
	},
	"ROPE_BACK": {
		supports: []cudaCond{sup("src0 rows dense and contiguous in dims 0-2", "ggml-cuda.cu:4867-4870", func(n *GraphTensor) bool {
			s0 := src(n, 0)
			return s0.Nb[0] == s0.TypeSize && s0.isContiguousN(2)
		})},
		requires: []cudaCond{
			assert("src0 and dst F32 or F16, the same type", "rope.cu:435-439", func(n *GraphTensor) bool {
				return isType(src(n, 0), "f32", "f16") && src(n, 0).Type == n.Type
			}),
			assert("row length even", "rope.cu:307", func(n *GraphTensor) bool { return n.Ne[0]%2 == 0 }),
			silent("dst contiguous (written at row*ne0 + i0)", "rope.cu:71,138", func(n *GraphTensor) bool { return n.Contiguous() }),
		},
	},
	"CROSS_ENTROPY_LOSS": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4903", always)},
		requires: []cudaCond{
			assert("src0, src1 and dst F32", "cross-entropy-loss.cu:98-100", allF32(0, 1)),
			assert("src0, src1 and dst contiguous", "cross-entropy-loss.cu:102-104", func(n *GraphTensor) bool {
				return src(n, 0).Contiguous() && src(n, 1).Contiguous() && n.Contiguous()
			}),
		},
	},
	"CROSS_ENTROPY_LOSS_BACK": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4904", always)},
		requires: []cudaCond{
			assert("all F32", "cross-entropy-loss.cu:142-145", allF32(0, 1, 2)),
			assert("the loss gradient (src0) a scalar", "cross-entropy-loss.cu:147", func(n *GraphTensor) bool { return src(n, 0).Elements() == 1 }),
			assert("logits, labels and dst contiguous and the same shape", "cross-entropy-loss.cu:148-152", func(n *GraphTensor) bool {
				a, b := src(n, 1), src(n, 2)
				return a.Contiguous() && b.Contiguous() && n.Contiguous() && a.SameShape(b) && a.SameShape(n)
			}),
		},
	},
	"ARGMAX": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4781-4785", always)},
		requires: []cudaCond{
			assert("src0 F32, dst I32", "argmax.cu:72-73", func(n *GraphTensor) bool { return isType(src(n, 0), "f32") && n.Type == "i32" }),
			assert("src0 contiguous", "argmax.cu:75", contiguous(0)),
		},
	},
	"SUM": {
		supports: []cudaCond{sup("src0 rows dense (ggml_is_contiguous_rows)", "ggml-cuda.cu:4879-4880", func(n *GraphTensor) bool { return src(n, 0).ContiguousRows() })},
		requires: []cudaCond{
			assert("src0 and dst F32", "sum.cu:28-29", allF32(0)),
			assert("src0 contiguously allocated", "sum.cu:30", contiguous(0)),
		},
	},
	"SUM_ROWS": {
		supports: []cudaCond{sup("src0 contiguous", "ggml-cuda.cu:4887-4891", contiguous(0))},
		requires: []cudaCond{assert("src0 and dst F32", "sumrows.cu:23-24", allF32(0))},
	},
	"REPEAT": {
		supports: []cudaCond{sup("src0 not I32 or I16", "ggml-cuda.cu:4786-4790", func(n *GraphTensor) bool { return !isType(src(n, 0), "i32", "i16") })},
		requires: []cudaCond{
			assert("src0 F32 or F16 (computed as a broadcast with dst as src0)", "binbcast.cu:374 via 391-393", func(n *GraphTensor) bool { return isType(src(n, 0), "f32", "f16") }),
			assert("dst and src0 rows dense", "binbcast.cu:254-256", func(n *GraphTensor) bool {
				return n.Nb[0] == n.TypeSize && src(n, 0).Nb[0] == src(n, 0).TypeSize
			}),
		},
	},
	"REPEAT_BACK": {
		supports: []cudaCond{sup("dst F32, src0 batch dims ne2*ne3 at most 32768", "ggml-cuda.cu:4791-4792", func(n *GraphTensor) bool {
			return n.Type == "f32" && src(n, 0).Ne[2]*src(n, 0).Ne[3] <= 1<<15
		})},
		requires: []cudaCond{
			assert("src0 the type of dst; dst contiguous; dst repeats to src0", "binbcast.cu:476-478", func(n *GraphTensor) bool {
				return src(n, 0).Type == n.Type && n.Contiguous() && n.CanRepeat(src(n, 0))
			}),
			assert("dst dim 1 at most 65535 (grid y)", "binbcast.cu:364, ggml-cuda.cu:2879-2883", func(n *GraphTensor) bool { return n.Ne[1] <= 65535 }),
		},
	},
	"CPY": {
		supports: []cudaCond{sup("a type pair cpy.cu implements (F32/F16/BF16 among themselves, F32<->Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, F32->IQ4_NL, I32 pairs, or equal types both contiguous)", "ggml-cuda.cu:4720-4775", func(n *GraphTensor) bool {
			return cudaCopyPair(src(n, 0), src(n, 1))
		})},
		requires: []cudaCond{
			assert("same number of elements", "cpy.cu:394", func(n *GraphTensor) bool { return src(n, 0).Elements() == src(n, 1).Elements() }),
			assert("each side under 2 GiB (INT_MAX bytes)", "cpy.cu:396-397", func(n *GraphTensor) bool {
				return nbytes(src(n, 0)) <= intMax && nbytes(src(n, 1)) <= intMax
			}),
			assert("into a quantized type: a whole number of blocks", "cpy.cu:232,253,277,301,325,349", func(n *GraphTensor) bool {
				d := src(n, 1)
				return d.BlockSize == 1 || src(n, 0).Elements()%d.BlockSize == 0
			}),
		},
	},
	"CONT": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4851-4852", always)},
		requires: []cudaCond{
			assert("a type pair cpy.cu implements (computed by ggml_cuda_dup as a copy)", "cpy.cu:578 -> ggml_cuda_cpy", func(n *GraphTensor) bool { return cudaCopyPair(src(n, 0), n) }),
			assert("each side under 2 GiB (INT_MAX bytes)", "cpy.cu:396-397", func(n *GraphTensor) bool {
				return nbytes(src(n, 0)) <= intMax && nbytes(n) <= intMax
			}),
		},
	},
	"DUP": {
		supports: []cudaCond{sup("src0 not I32 or I16", "ggml-cuda.cu:4776-4780", func(n *GraphTensor) bool { return !isType(src(n, 0), "i32", "i16") })},
		requires: []cudaCond{
			assert("a type pair cpy.cu implements", "cpy.cu:578 -> ggml_cuda_cpy", func(n *GraphTensor) bool { return cudaCopyPair(src(n, 0), n) }),
			assert("each side under 2 GiB (INT_MAX bytes)", "cpy.cu:396-397", func(n *GraphTensor) bool {
				return nbytes(src(n, 0)) <= intMax && nbytes(n) <= intMax
			}),
		},
	},
	"OPT_STEP_ADAMW": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4905", always)},
		requires: []cudaCond{
			assert("parameter, gradient, moments and the 7 AdamW values F32", "opt-step-adamw.cu:52-56", func(n *GraphTensor) bool {
				for i := 0; i < 5; i++ {
					if !isType(src(n, i), "f32") {
						return false
					}
				}
				return true
			}),
			assert("all five contiguous", "opt-step-adamw.cu:57-61", func(n *GraphTensor) bool {
				for i := 0; i < 5; i++ {
					if !src(n, i).Contiguous() {
						return false
					}
				}
				return true
			}),
			assert("gradient and moments the parameter's shape; 7 AdamW values", "opt-step-adamw.cu:62-65", func(n *GraphTensor) bool {
				p := src(n, 0)
				return p.SameShape(src(n, 1)) && p.SameShape(src(n, 2)) && p.SameShape(src(n, 3)) && src(n, 4).Elements() == 7
			}),
		},
	},
	"NEG": {
		supports: []cudaCond{sup("src0 contiguous", "ggml-cuda.cu:4576,4596", contiguous(0))},
		requires: []cudaCond{assert("src0 F32 or F16, same type as dst", "unary.cu:138-140", func(n *GraphTensor) bool {
			return isType(src(n, 0), "f32", "f16") && src(n, 0).Type == n.Type
		})},
	},
	"EXP": {
		supports: []cudaCond{sup("src0 contiguous", "ggml-cuda.cu:4587,4596", contiguous(0))},
		requires: []cudaCond{assert("src0 F32 or F16, same type as dst", "unary.cu:138-140", func(n *GraphTensor) bool {
			return isType(src(n, 0), "f32", "f16") && src(n, 0).Type == n.Type
		})},
	},
	"MEAN": {
		supports: []cudaCond{sup("src0 contiguous", "ggml-cuda.cu:4888,4891", contiguous(0))},
		requires: []cudaCond{assert("src0 and dst F32", "mean.cu:19-21", allF32(0))},
	},
	"SET": {
		supports: []cudaCond{sup("dst F32 or I32, sources of the same type", "ggml-cuda.cu:4713-4719", func(n *GraphTensor) bool {
			return isType(n, "f32", "i32") && src(n, 0).Type == n.Type && src(n, 1).Type == n.Type
		})},
		requires: []cudaCond{
			assert("dst, src0 and src1 contiguous", "set.cu:12-14", func(n *GraphTensor) bool {
				return n.Contiguous() && src(n, 0).Contiguous() && src(n, 1).Contiguous()
			}),
			assert("each side under 2 GiB (INT_MAX bytes)", "cpy.cu:396-397", func(n *GraphTensor) bool {
				return nbytes(src(n, 0)) <= intMax && nbytes(src(n, 1)) <= intMax
			}),
		},
	},
	"COUNT_EQUAL": {
		supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4782-4785", always)},
		requires: []cudaCond{
			assert("I32 inputs of the same shape, I64 dst, all contiguous, under 2^30 elements", "count-equal.cu:32-62", func(n *GraphTensor) bool {
				a, b := src(n, 0), src(n, 1)
				return isType(a, "i32") && isType(b, "i32") && n.Type == "i64" && a.SameShape(b) &&
					a.Contiguous() && b.Contiguous() && n.Contiguous() && a.Elements() < 1<<30
			}),
		},
	},
	"DIAG_MASK_INF":  {supports: []cudaCond{sup("accepted unconditionally", "ggml-cuda.cu:4853-4854", always)}},
	"DIAG_MASK_ZERO": {supports: []cudaCond{sup("not in supports_op's switch: always the CPU", "ggml-cuda.cu:4914-4915", func(*GraphTensor) bool { return false })}},
	"SET_ROWS": {
		supports: []cudaCond{sup("dst F32/F16/BF16/Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/IQ4_NL, src0 F32, src1 I64 or I32", "ggml-cuda.cu:4705-4712", func(n *GraphTensor) bool {
			return isType(n, "f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl") && isType(src(n, 0), "f32") && isType(src(n, 1), "i64", "i32")
		})},
	},
	"FLASH_ATTN_EXT": {
		// Decided per device (compute capability, head size, types) by
		// ggml_cuda_flash_attn_ext_supported; a refusal falls back to the
		// CPU. Inference graphs only: training never uses flash attention.
		supports: []cudaCond{sup("ggml_cuda_flash_attn_ext_supported (per device)", "ggml-cuda.cu:4901-4902", always)},
		requires: []cudaCond{
			assert("Q and dst F32; Q, K and V rows dense", "fattn-common.cuh:792-797", func(n *GraphTensor) bool {
				q, k, v := src(n, 0), src(n, 1), src(n, 2)
				return isType(q, "f32") && n.Type == "f32" && q.Nb[0] == q.TypeSize && k.Nb[0] == k.TypeSize && v.Nb[0] == v.TypeSize
			}),
			assert("mask F16 (supports_op does not check it)", "fattn-common.cuh:799", func(n *GraphTensor) bool {
				m := src(n, 3)
				return m == nil || isType(m, "f16")
			}),
		},
	},
}

// cudaCopyPair is the CPY/CONT/DUP type rule of supports_op
// (ggml-cuda.cu:4720-4775), which the copy kernels implement.
func cudaCopyPair(a, b *GraphTensor) bool {
	if a == nil || b == nil {
		return false
	}
	float := func(t *GraphTensor) bool { return isType(t, "f32", "f16", "bf16") }
	if float(a) && float(b) {
		return true
	}
	switch {
	case a.Type == "f32" && isType(b, "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "i32"):
		return true
	case isType(a, "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "i32") && b.Type == "f32":
		return true
	case a.Type == "i32" && b.Type == "i32":
		return true
	}
	return a.Type == b.Type && a.Contiguous() && b.Contiguous()
}

// CheckCUDA checks every node of g against the CUDA contract above.
func CheckCUDA(g *Graph) CUDAReport {
	r := CUDAReport{Fallbacks: map[string]int{}, FallbackWhy: map[string]string{}}
	unknown := map[string]bool{}
	for _, n := range g.Nodes() {
		r.Nodes++
		if viewOps[n.Op] {
			continue
		}
		rule, ok := cudaRules[n.Op]
		if !ok {
			unknown[n.Op] = true
			continue
		}
		refused := ""
		for _, c := range rule.supports {
			if !c.holds(n) {
				refused = c.what + " (" + c.at + ")"
				break
			}
		}
		if refused != "" {
			if r.Fallbacks[n.Op] == 0 {
				r.FallbackWhy[n.Op] = refused
			}
			r.Fallbacks[n.Op]++
			continue
		}
		for _, c := range rule.requires {
			if !c.holds(n) {
				r.Issues = append(r.Issues, CUDAIssue{Node: n, Rule: c.what, At: c.at, Abort: c.abort})
			}
		}
	}
	for op := range unknown {
		r.Unknown = append(r.Unknown, op)
	}
	sort.Strings(r.Unknown)
	return r
}
