// The qcoder subcommands. Each parses its own flags and calls the library; stdout carries only
// the result, diagnostics go to stderr.
#pragma once

namespace qcoder::cli {

int run_logits(int argc, char** argv);
int run_generate(int argc, char** argv);
int run_inspect(int argc, char** argv);
int run_tokenize(int argc, char** argv);
int run_detokenize(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_plan(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_template(int argc, char** argv);
int run_parse_tools(int argc, char** argv);

}  // namespace qcoder::cli
