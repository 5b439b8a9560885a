// shim.cpp: exception-safe wrappers around llama.cpp calls (see shim.h).

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <pthread.h>

#include "shim.h"
#include "guard.hpp"
#include "ggml.h"
#include "llama-context.h"
#include "llama-kv-cache.h"
#include "llama-kv-cache-iswa.h"
#include "llama-model.h"

extern "C" {
// Implemented in Go (log.go, model.go).
void goLog(int level, char *text);
bool goProgress(float progress, uintptr_t handle);
}

// lastError collects the error lines llama.cpp logged on this thread since
// the current call began, so that a failed call can explain itself in the
// Go error it becomes. The first line is usually the cause ("unknown model
// architecture: ..."), the last one a generic "failed to load model".
static thread_local std::string lastError;

static void logSink(enum ggml_log_level level, const char *text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR && lastError.size() < 2048) {
        std::string line = text;
        while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) {
            line.pop_back();
        }
        if (!line.empty()) {
            if (!lastError.empty()) {
                lastError += "; ";
            }
            lastError += line;
        }
    }
    goLog((int)level, (char *)text);
}

static void setErr(char *err, size_t len, const char *msg) { cp_set_err(err, len, msg); }

static void setErrFromLog(char *err, size_t len, const char *fallback) {
    setErr(err, len, lastError.empty() ? fallback : lastError.c_str());
}

// llama.cpp reuses the previous compute graph when the next batch has the same
// shape, but its reuse check does not notice LoRA adapters being attached,
// detached or rescaled (it compares a pointer to the same adapter map), so
// the old graph would silently keep the old adapters. The fix is to drop the
// cached graph after every adapter change. gf_res_prev is private; the
// explicit-instantiation idiom below is the standard-conforming way to reach
// a private member without editing the vendored header.
template <typename Tag, typename Tag::type Member>
struct PrivateAccess {
    friend typename Tag::type get(Tag) { return Member; }
};
struct PrevGraphTag {
    typedef llm_graph_result_ptr llama_context::*type;
    friend type get(PrevGraphTag);
};
template struct PrivateAccess<PrevGraphTag, &llama_context::gf_res_prev>;

// The KV cells of each stream are private too; the engine's debug trace and
// tests read how far into its stream each sequence's cells reach, which is
// what llama.cpp sizes attention by.
struct KVCellsTag {
    typedef std::vector<llama_kv_cells> llama_kv_cache::*type;
    friend type get(KVCellsTag);
};
template struct PrivateAccess<KVCellsTag, &llama_kv_cache::v_cells>;

extern "C" {

void cp_forget_graph(struct llama_context *ctx) {
    auto &prev = ctx->*get(PrevGraphTag());
    if (prev) {
        prev->reset();
    }
}

bool cp_kv_cells(struct llama_context *ctx, int32_t stream, uint32_t *used, uint32_t *max_p1, uint32_t *size, uint32_t *n_kv) {
    llama_memory_i *mem = llama_get_memory(ctx);
    auto *kv = dynamic_cast<llama_kv_cache *>(mem);
    if (kv == nullptr) {
        if (auto *iswa = dynamic_cast<llama_kv_cache_iswa *>(mem)) {
            kv = iswa->get_base();
        }
    }
    if (kv == nullptr) {
        return false;
    }
    const auto &cells = kv->*get(KVCellsTag());
    if (stream < 0 || (size_t)stream >= cells.size()) {
        return false;
    }
    const auto &c = cells[stream];
    *used = c.get_used();
    *max_p1 = c.used_max_p1();
    *size = c.size();
    // get_n_kv reads only the streams of the slot info.
    llama_kv_cache::slot_info si{};
    si.resize(1);
    si.strm[0] = stream;
    si.s0 = si.s1 = stream;
    *n_kv = kv->get_n_kv(si);
    return true;
}

void cp_head_dims(const struct llama_model *model, uint32_t *k, uint32_t *v) {
    *k = model->hparams.n_embd_head_k;
    *v = model->hparams.n_embd_head_v;
}

void cp_install_log(void) {
    llama_log_set(logSink, nullptr);
    ggml_log_set(logSink, nullptr);
}

static bool progressTrampoline(float progress, void *ud) {
    return goProgress(progress, (uintptr_t)ud);
}

struct llama_model *cp_load_model(const char *path, struct llama_model_params params, uintptr_t progress_handle, char *err, size_t err_len) {
    lastError.clear();
    if (progress_handle != 0) {
        params.progress_callback = progressTrampoline;
        params.progress_callback_user_data = (void *)progress_handle;
    }
    return cp_guarded(err, err_len, "unknown C++ exception while loading the model", static_cast<struct llama_model *>(nullptr), [&]() {
        struct llama_model *m = llama_model_load_from_file(path, params);
        if (m == nullptr) {
            setErrFromLog(err, err_len, "llama.cpp could not load the model");
        }
        return m;
    });
}

struct llama_context *cp_new_context(struct llama_model *model, struct llama_context_params params, char *err, size_t err_len) {
    lastError.clear();
    return cp_guarded(err, err_len, "unknown C++ exception while creating the context", static_cast<struct llama_context *>(nullptr), [&]() {
        struct llama_context *c = llama_init_from_model(model, params);
        if (c == nullptr) {
            setErrFromLog(err, err_len, "llama.cpp could not create the context");
        }
        return c;
    });
}

int32_t cp_decode(struct llama_context *ctx, struct llama_batch batch, char *err, size_t err_len) {
    lastError.clear();
    return cp_guarded(err, err_len, "unknown C++ exception in llama_decode", (int32_t)-100, [&]() {
        int32_t rc = llama_decode(ctx, batch);
        if (rc != 0) {
            setErrFromLog(err, err_len, "llama_decode failed");
        }
        return rc;
    });
}

int32_t cp_sample(struct llama_sampler *smpl, struct llama_context *ctx, int32_t idx, llama_token *out, char *err, size_t err_len) {
    lastError.clear();
    return cp_guarded(err, err_len, "unknown C++ exception while sampling", (int32_t)-1, [&]() {
        *out = llama_sampler_sample(smpl, ctx, idx);
        return 0;
    });
}

int32_t cp_accept(struct llama_sampler *smpl, llama_token tok, char *err, size_t err_len) {
    return cp_guarded(err, err_len, "unknown C++ exception in sampler accept", (int32_t)-1, [&]() {
        llama_sampler_accept(smpl, tok);
        return 0;
    });
}

struct llama_sampler *cp_grammar(const struct llama_vocab *vocab, const char *grammar, const char *root, char *err, size_t err_len) {
    lastError.clear();
    return cp_guarded(err, err_len, "unknown C++ exception while parsing the grammar", static_cast<struct llama_sampler *>(nullptr), [&]() {
        struct llama_sampler *s = llama_sampler_init_grammar(vocab, grammar, root);
        if (s == nullptr) {
            setErrFromLog(err, err_len, "invalid grammar");
        }
        return s;
    });
}

struct llama_adapter_lora *cp_load_adapter(struct llama_model *model, const char *path, char *err, size_t err_len) {
    lastError.clear();
    return cp_guarded(err, err_len, "unknown C++ exception while loading the adapter", static_cast<struct llama_adapter_lora *>(nullptr), [&]() {
        struct llama_adapter_lora *a = llama_adapter_lora_init(model, path);
        if (a == nullptr) {
            setErrFromLog(err, err_len, "llama.cpp could not load the LoRA adapter");
        }
        return a;
    });
}

// llama.cpp's BPE pre-tokenizers for most models (Qwen2, StarCoder, DeepSeek,
// ...) split text with std::regex, whose matcher recurses once per character
// of a match: a run of 32,000 'A's needs about 8 MB of stack, more than the
// thread a cgo call runs on has, and the process dies with SIGSEGV. So
// tokenization runs on a thread of its own whose stack the caller sizes for
// the text (Go bounds the text length first; see tokenizeStack in model.go).
// The stack is reserved address space: only the pages the matcher touches
// become memory, and they are returned when the thread ends.
struct tokenizeJob {
    const struct llama_vocab *vocab;
    const char *text;
    int32_t len;
    llama_token *out;
    int32_t cap;
    bool add_special;
    bool parse_special;
    int32_t result;
    bool failed;
    std::string error;
};

static void *tokenizeThread(void *arg) {
    tokenizeJob *job = (tokenizeJob *)arg;
    try {
        job->result = llama_tokenize(job->vocab, job->text, job->len, job->out, job->cap, job->add_special, job->parse_special);
    } catch (const std::exception &e) {
        job->failed = true;
        job->error = e.what();
    } catch (...) {
        job->failed = true;
        job->error = "unknown C++ exception while tokenizing";
    }
    return nullptr;
}

int32_t cp_tokenize(const struct llama_vocab *vocab, const char *text, int32_t len, llama_token *out, int32_t cap, bool add_special, bool parse_special, size_t stack_bytes, int32_t *n_out, char *err, size_t err_len) {
    tokenizeJob job{vocab, text, len, out, cap, add_special, parse_special, 0, false, std::string()};
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        setErr(err, err_len, "cannot set up the tokenizer thread");
        return -1;
    }
    int rc = pthread_attr_setstacksize(&attr, stack_bytes);
    pthread_t th;
    if (rc == 0) {
        rc = pthread_create(&th, &attr, tokenizeThread, &job);
    }
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        char msg[128];
        std::snprintf(msg, sizeof msg, "cannot start the tokenizer thread with a %zu MiB stack (error %d)", stack_bytes >> 20, rc);
        setErr(err, err_len, msg);
        return -1;
    }
    pthread_join(th, nullptr);
    if (job.failed) {
        setErr(err, err_len, job.error.c_str());
        return -1;
    }
    *n_out = job.result;
    return 0;
}

int32_t cp_chat_template(const char *tmpl, const struct llama_chat_message *msgs, size_t n, bool add_ass, char *buf, int32_t len) {
    try {
        return llama_chat_apply_template(tmpl, msgs, n, add_ass, buf, len);
    } catch (...) {
        return -1;
    }
}

} // extern "C"
