// The qcoder subcommands. Each parses its own flags and calls the library; stdout carries only
// the result, diagnostics go to stderr.
#pragma once

namespace qcoder::cli {

int run_logits(int argc, char** argv);
int run_generate(int argc, char** argv);
int run_inspect(int argc, char** argv);

}  // namespace qcoder::cli
