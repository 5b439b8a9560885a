// graphinfo.h: a plain-data description of ggml graph nodes, so that Go can
// check the graphs codeplan builds (training) or llama.cpp builds
// (inference, scoring) against the rules of backends that are not present,
// such as the CUDA kernels' preconditions (llama/cudacontract.go).
#ifndef CODEPLAN_GRAPHINFO_H
#define CODEPLAN_GRAPHINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP_GRAPH_MAX_SRC 10 // GGML_MAX_SRC at the pinned commit

// cp_graph_tensor is one tensor of a graph: a computed node or one of the
// tensors it reads (leafs, weights, views). src holds indices into the same
// array, -1 where a node has fewer sources; a source always comes earlier,
// except a tensor that is its own source (ggml_cast's copy into itself).
typedef struct cp_graph_tensor {
    int32_t  op;           // enum ggml_op
    char     op_name[32];  // ggml_op_desc: unary and GLU ops by their own name
    int32_t  type;         // enum ggml_type
    char     type_name[16];
    int64_t  ne[4];
    uint64_t nb[4];
    int64_t  block_size;   // ggml_blck_size(type)
    uint64_t type_size;    // ggml_type_size(type)
    int32_t  op_params[16];
    int32_t  is_node;      // computed by the graph (not a leaf or an outside tensor)
    int32_t  is_view;      // view_src != NULL
    int32_t  is_param;     // GGML_TENSOR_FLAG_PARAM
    int32_t  src[CP_GRAPH_MAX_SRC];
    char     name[64];
} cp_graph_tensor;

// cp_graph_recorder collects the nodes of every graph a llama_context
// computes, through ggml's scheduler evaluation callback (cb_eval).
typedef struct cp_graph_recorder cp_graph_recorder;

cp_graph_recorder *cp_graph_recorder_new(void);
void               cp_graph_recorder_free(cp_graph_recorder *r);
// cp_graph_recorder_attach points params' cb_eval at r.
void               cp_graph_recorder_attach(cp_graph_recorder *r, struct llama_context_params *params);
int32_t            cp_graph_recorder_len(const cp_graph_recorder *r);
// cp_graph_recorder_get copies up to cap tensors; returns how many.
int32_t            cp_graph_recorder_get(const cp_graph_recorder *r, cp_graph_tensor *out, int32_t cap);
void               cp_graph_recorder_reset(cp_graph_recorder *r);

#ifdef __cplusplus
}

#include <vector>
#include <unordered_map>
struct ggml_tensor;
struct ggml_cgraph;

// cp_graph_collector turns nodes into cp_graph_tensor rows, each tensor
// once, sources before the nodes that read them.
struct cp_graph_collector {
    std::vector<cp_graph_tensor>                    rows;
    std::unordered_map<const ggml_tensor *, int32_t> index;
    int32_t add(const ggml_tensor *t, bool is_node);
    void    add_graph(const ggml_cgraph *g);
};
#endif

#endif
