// graphinfo.cpp: see graphinfo.h.

#include "graphinfo.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "ggml.h"
#include "ggml-backend.h"

int32_t cp_graph_collector::add(const ggml_tensor *root, bool is_node) {
    auto it = index.find(root);
    if (it != index.end()) {
        if (is_node) {
            rows[it->second].is_node = 1;
        }
        return it->second;
    }
    // Sources first, so that a row's src indices always point backwards:
    // a depth-first walk with its own stack, since chains of sources can be
    // as long as the graph (recursion overflowed the thread's stack).
    struct frame {
        const ggml_tensor *t;
        int                next; // next source to visit
    };
    std::vector<frame>                      stack{{root, 0}};
    std::unordered_map<const ggml_tensor *, bool> open{{root, true}};
    while (!stack.empty()) {
        const size_t top = stack.size() - 1;
        if (stack[top].next < GGML_MAX_SRC) {
            const ggml_tensor *s = stack[top].t->src[stack[top].next++];
            if (s != nullptr && index.find(s) == index.end() && !open[s]) {
                open[s] = true;
                stack.push_back({s, 0});
            }
            continue;
        }
        const ggml_tensor *t = stack[top].t;
        stack.pop_back();
        open[t] = false;
        cp_graph_tensor row;
        std::memset(&row, 0, sizeof(row));
        for (int i = 0; i < CP_GRAPH_MAX_SRC; ++i) {
            // ggml_cast makes a CPY that is its own destination (src[1] = itself)
            if (i < GGML_MAX_SRC && t->src[i] == t) {
                row.src[i] = (int32_t) rows.size();
                continue;
            }
            auto si  = (i < GGML_MAX_SRC && t->src[i] != nullptr) ? index.find(t->src[i]) : index.end();
            row.src[i] = si == index.end() ? -1 : si->second;
        }
        row.op = (int32_t) t->op;
        std::snprintf(row.op_name, sizeof(row.op_name), "%s", ggml_op_desc(t));
        row.type = (int32_t) t->type;
        std::snprintf(row.type_name, sizeof(row.type_name), "%s", ggml_type_name(t->type));
        for (int d = 0; d < 4; ++d) {
            row.ne[d] = t->ne[d];
            row.nb[d] = t->nb[d];
        }
        row.block_size = ggml_blck_size(t->type);
        row.type_size  = ggml_type_size(t->type);
        static_assert(sizeof(row.op_params) == GGML_MAX_OP_PARAMS, "op_params size");
        std::memcpy(row.op_params, t->op_params, sizeof(row.op_params));
        row.is_node  = (t == root && is_node) ? 1 : 0;
        row.is_view  = t->view_src != nullptr ? 1 : 0;
        row.is_param = (t->flags & GGML_TENSOR_FLAG_PARAM) ? 1 : 0;
        std::snprintf(row.name, sizeof(row.name), "%s", t->name);
        rows.push_back(row);
        index[t] = (int32_t) rows.size() - 1;
    }
    return index[root];
}

void cp_graph_collector::add_graph(const ggml_cgraph *g) {
    ggml_cgraph *gg = const_cast<ggml_cgraph *>(g);
    for (int i = 0; i < ggml_graph_n_nodes(gg); ++i) {
        add(ggml_graph_node(gg, i), true);
    }
}

struct cp_graph_recorder {
    cp_graph_collector c;
};

namespace {

// record is the scheduler's evaluation callback: asked about every node
// before it is computed, it notes the node and declines to look at its data
// (so the scheduler computes the graph as usual).
bool record(struct ggml_tensor *t, bool ask, void *user) {
    if (ask) {
        static_cast<cp_graph_recorder *>(user)->c.add(t, true);
    }
    return false;
}

} // namespace

extern "C" {

cp_graph_recorder *cp_graph_recorder_new(void) {
    return new (std::nothrow) cp_graph_recorder();
}

void cp_graph_recorder_free(cp_graph_recorder *r) {
    delete r;
}

void cp_graph_recorder_attach(cp_graph_recorder *r, struct llama_context_params *params) {
    params->cb_eval           = record;
    params->cb_eval_user_data = r;
}

int32_t cp_graph_recorder_len(const cp_graph_recorder *r) {
    return (int32_t) r->c.rows.size();
}

int32_t cp_graph_recorder_get(const cp_graph_recorder *r, cp_graph_tensor *out, int32_t cap) {
    int32_t n = (int32_t) r->c.rows.size();
    if (n > cap) {
        n = cap;
    }
    std::memcpy(out, r->c.rows.data(), (size_t) n * sizeof(cp_graph_tensor));
    return n;
}

void cp_graph_recorder_reset(cp_graph_recorder *r) {
    r->c.rows.clear();
    r->c.index.clear();
}

} // extern "C"
