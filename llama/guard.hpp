// guard.hpp: the one way codeplan's C++ (shim.cpp, train.cpp) turns a C++
// exception into an error message for Go, so that no exception crosses the
// cgo boundary (which would abort the process).
#pragma once

#include <cstdio>
#include <exception>

// cp_set_err copies msg into the caller's error buffer, truncating.
inline void cp_set_err(char *err, size_t len, const char *msg) {
    if (err != nullptr && len > 0) {
        std::snprintf(err, len, "%s", msg);
    }
}

// cp_guarded returns f(); if f throws, the exception's message (or unknown,
// for a non-standard exception) goes to err and fallback is returned.
template <typename T, typename F>
T cp_guarded(char *err, size_t len, const char *unknown, T fallback, F f) {
    try {
        return f();
    } catch (const std::exception &e) {
        cp_set_err(err, len, e.what());
    } catch (...) {
        cp_set_err(err, len, unknown);
    }
    return fallback;
}
