#include "server/openai_handlers.h"

#include <chrono>
#include <random>

#include "core/log.h"
#include "server/api_error.h"
#include "server/choice_stream.h"

namespace qcoder::server {

using json = nlohmann::ordered_json;
using ojson = nlohmann::ordered_json;

namespace {

constexpr const char* kFingerprint = "fp_qcoder";

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += hex[rng() & 15];
  return s;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json parse_body(const HttpRequest& req) {
  json b = json::parse(req.body, nullptr, false);
  if (b.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!b.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return b;
}

// One choice to generate: its prompt and what its reply starts with.
struct ChoiceJob {
  std::vector<int32_t> prompt;
  std::string forced_prefix;  // chat: a forced tool-call start, part of the reply
  std::string echo;           // completions: the prompt text repeated before the reply
  size_t prompt_index = 0;
};

json token_logprob(const TextBackend& text, int32_t id, float lp) {
  const std::string t = text.decode(std::span<const int32_t>(&id, 1), false);
  json bytes = json::array();
  for (unsigned char c : t) bytes.push_back(static_cast<int>(c));
  // Token text may end inside a UTF-8 character: every dump() here replaces invalid bytes.
  return {{"token", t}, {"logprob", lp}, {"bytes", bytes}};
}

// Runs every choice to the end, calling on_delta as text becomes final and on_finish once per
// choice. Returns false when the client went away (everything is cancelled then).
class Runner {
 public:
  Runner(const ServeContext& ctx, const ApiRequest& r, ResponseWriter& w)
      : ctx_(ctx), r_(r), w_(w) {}

  struct Choice {
    std::shared_ptr<engine::RequestState> state;
    std::unique_ptr<ChoiceStream> stream;
    bool done = false;
    std::string finish_reason;
    std::string error;
    json logprobs = json::array();  // entries not yet sent (streaming) or all (whole)
    size_t prompt_index = 0;
    int64_t events = 0;
    engine::Clock::time_point last;
  };
  std::vector<Choice> choices;

  void submit(const std::vector<ChoiceJob>& jobs) {
    for (size_t j = 0; j < jobs.size(); ++j) {
      for (int k = 0; k < r_.n; ++k) {
        engine::GenerationParams p = r_.gen;
        p.prompt = jobs[j].prompt;
        if (p.sampling.seed && k > 0) p.sampling.seed = *p.sampling.seed + static_cast<uint64_t>(k);
        Choice c;
        c.prompt_index = j;
        try {
          c.state = ctx_.engine.submit(std::move(p));
        } catch (const engine::QueueFull& e) {
          cancel_all();
          throw ApiError(429, e.what(), "", "rate_limit_exceeded");
        } catch (const Error& e) {
          cancel_all();
          const std::string msg = e.what();
          throw ApiError(400, msg, "messages",
                         msg.find("context limit") != std::string::npos ? "context_length_exceeded"
                                                                        : "invalid_value");
        }
        const bool parse_tools = r_.chat && r_.tool_choice != ToolChoice::kNone;
        c.stream =
            std::make_unique<ChoiceStream>(ctx_.text, r_.stop, parse_tools ? r_.tools : json(),
                                           jobs[j].forced_prefix, !r_.parallel_tool_calls);
        choices.push_back(std::move(c));
      }
    }
  }

  template <typename OnDelta, typename OnFinish>
  bool run(OnDelta on_delta, OnFinish on_finish) {
    std::vector<engine::TokenEvent> events;
    std::vector<json> deltas;
    for (;;) {
      bool all_done = true;
      for (size_t i = 0; i < choices.size(); ++i) {
        Choice& c = choices[i];
        if (c.done) continue;
        events.clear();
        const bool finished = c.state->take(events);
        for (const engine::TokenEvent& ev : events) {
          if (c.stream->stopped()) break;
          observe_timing(c, ev);
          deltas.clear();
          c.stream->push(ev.token, deltas);
          if (r_.logprobs) {
            json e = token_logprob(ctx_.text, ev.token, ev.logprob);
            json top = json::array();
            for (const auto& [id, lp] : ev.top) top.push_back(token_logprob(ctx_.text, id, lp));
            e["top_logprobs"] = top;
            c.logprobs.push_back(e);
          }
          for (json& d : deltas) on_delta(i, d);
        }
        if (c.stream->stopped()) {
          c.state->cancel();
          c.finish_reason = c.stream->stopped_by_tool_call() ? "tool_calls" : "stop";
        } else if (finished) {
          switch (c.state->finish_reason()) {
            case engine::FinishReason::kStop:
              c.finish_reason = "stop";
              break;
            case engine::FinishReason::kLength:
              c.finish_reason = "length";
              break;
            case engine::FinishReason::kCancelled:
              c.error = "the request was cancelled: the server is shutting down";
              break;
            default:
              c.error = "generation failed: " + c.state->error();
              break;
          }
        } else {
          all_done = false;
          continue;
        }
        deltas.clear();
        c.stream->finish(deltas);
        for (json& d : deltas) on_delta(i, d);
        if (c.finish_reason == "stop" && c.stream->saw_tool_call() && r_.chat &&
            r_.tool_choice != ToolChoice::kNone)
          c.finish_reason = "tool_calls";
        c.done = true;
        ctx_.metrics.request_latency.observe(
            std::chrono::duration<double>(engine::Clock::now() - c.state->submitted()).count());
        on_finish(i);
      }
      if (all_done) return true;
      if (w_.failed()) {  // a write found the client gone
        ctx_.metrics.count_disconnect();
        cancel_all();
        return false;
      }
      int fd = -1;
      for (const Choice& c : choices)
        if (!c.done) {
          fd = c.state->notify_fd();
          break;
        }
      if (w_.wait(fd, choices.size() > 1 ? 20 : 500) == ResponseWriter::Wait::kDisconnected) {
        ctx_.metrics.count_disconnect();
        cancel_all();
        return false;
      }
    }
  }

  void cancel_all() {
    for (Choice& c : choices)
      if (c.state) c.state->cancel();
  }

  ojson usage() const {
    int64_t prompt = 0, cached = 0, completion = 0;
    std::vector<bool> seen;
    for (const Choice& c : choices) {
      completion += c.stream->tokens();
      if (seen.size() <= c.prompt_index) seen.resize(c.prompt_index + 1);
      if (!seen[c.prompt_index]) {
        seen[c.prompt_index] = true;
        prompt += c.state->prompt_tokens();
        cached += c.state->cached_tokens();
      }
    }
    ctx_.metrics.add_tokens(prompt, completion);
    ojson u;
    u["prompt_tokens"] = prompt;
    u["completion_tokens"] = completion;
    u["total_tokens"] = prompt + completion;
    u["prompt_tokens_details"] = {{"cached_tokens", cached}};
    return u;
  }

 private:
  void observe_timing(Choice& c, const engine::TokenEvent& ev) {
    if (c.events++ == 0)
      ctx_.metrics.ttft.observe(
          std::chrono::duration<double>(ev.time - c.state->submitted()).count());
    else
      ctx_.metrics.inter_token.observe(std::chrono::duration<double>(ev.time - c.last).count());
    c.last = ev.time;
  }

  const ServeContext& ctx_;
  const ApiRequest& r_;
  ResponseWriter& w_;
};

const Headers kSseHeaders = {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}};

bool send_event(ResponseWriter& w, const ojson& j) {
  return w.write("data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
}

void send_json(ResponseWriter& w, int status, const ojson& j) {
  w.send(status, "application/json", j.dump(-1, ' ', false, json::error_handler_t::replace));
}

// A stream that failed after it began: an error event, then the end.
void send_stream_error(ResponseWriter& w, const std::string& message) {
  ojson e;
  e["error"] = {
      {"message", message}, {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}};
  send_event(w, e);
  w.write("data: [DONE]\n\n");
  w.end_stream();
}

ojson chunk_head(const std::string& id, const char* object, int64_t created,
                 const std::string& model) {
  ojson j;
  j["id"] = id;
  j["object"] = object;
  j["created"] = created;
  j["model"] = model;
  j["system_fingerprint"] = kFingerprint;
  return j;
}

std::string first_error(const Runner& run) {
  for (const auto& c : run.choices)
    if (!c.error.empty()) return c.error;
  return {};
}

// The end of a streamed response: the first choice's error as an error event, or the usage
// chunk (when stream_options.include_usage asked for it) and [DONE].
void finish_stream(ResponseWriter& w, Runner& run, bool include_usage, const std::string& id,
                   const char* object, int64_t created, const std::string& model) {
  if (const std::string err = first_error(run); !err.empty()) return send_stream_error(w, err);
  const ojson usage = run.usage();  // also records the request's token counts
  if (include_usage) {
    ojson j = chunk_head(id, object, created, model);
    j["choices"] = ojson::array();
    j["usage"] = usage;
    send_event(w, j);
  }
  w.write("data: [DONE]\n\n");
  w.end_stream();
}

}  // namespace

void handle_chat_completions(const ServeContext& ctx, const HttpRequest& req, ResponseWriter& w) {
  const json body = parse_body(req);
  ApiRequest r = parse_chat_request(body, ctx.defaults);

  // Render: the tools go to the template unless tool_choice is "none".
  // Text content parts become one string, joined by newlines as vLLM does: chat templates
  // expect string content.
  json messages = r.messages;
  for (json& m : messages) {
    if (!m.contains("content") || !m["content"].is_array()) continue;
    std::string joined;
    for (size_t i = 0; i < m["content"].size(); ++i)
      joined += (i ? "\n" : "") + m["content"][i]["text"].get<std::string>();
    m["content"] = joined;
  }
  json render = {{"messages", messages}, {"add_generation_prompt", true}};
  const bool tools_on = r.tool_choice != ToolChoice::kNone;
  if (tools_on) render["tools"] = r.tools;
  for (const auto& [k, v] : r.template_kwargs.items())
    if (k != "messages" && k != "tools") render[k] = v;
  std::string prompt_text;
  try {
    prompt_text = ctx.text.render_chat(render);
  } catch (const Error& e) {
    throw ApiError(400, std::string("the chat template rejected the messages: ") + e.what(),
                   "messages");
  }
  ChoiceJob job;
  if (r.tool_choice == ToolChoice::kNamed)
    job.forced_prefix = "<tool_call>\n<function=" + r.tool_name + ">\n";
  if (r.tool_choice == ToolChoice::kRequired) job.forced_prefix = "<tool_call>\n<function=";
  job.prompt = ctx.text.encode(prompt_text + job.forced_prefix, true);

  Runner run(ctx, r, w);
  run.submit({job});
  const std::string id = random_id("chatcmpl-");
  const int64_t created = unix_now();
  const std::string& model = ctx.model_name;

  if (r.stream) {
    w.begin_stream(200, "text/event-stream", kSseHeaders);
    auto chunk = [&](size_t i, const ojson& delta, const json& finish) {
      ojson j = chunk_head(id, "chat.completion.chunk", created, model);
      ojson c;
      c["index"] = i;
      c["delta"] = delta;
      Runner::Choice& ch = run.choices[i];
      if (r.logprobs && (!ch.logprobs.empty() || !finish.is_null())) {
        c["logprobs"] = {{"content", ch.logprobs}, {"refusal", nullptr}};
        ch.logprobs = json::array();
      } else {
        c["logprobs"] = nullptr;
      }
      c["finish_reason"] = finish;
      j["choices"] = ojson::array({c});
      if (r.include_usage) j["usage"] = nullptr;
      return send_event(w, j);
    };
    for (size_t i = 0; i < run.choices.size(); ++i) {
      ojson d;
      d["role"] = "assistant";
      d["content"] = "";
      chunk(i, d, nullptr);
    }
    const bool ok = run.run([&](size_t i, const json& d) { chunk(i, ojson(d), nullptr); },
                            [&](size_t i) {
                              if (run.choices[i].error.empty())
                                chunk(i, ojson::object(), run.choices[i].finish_reason);
                            });
    if (ok) finish_stream(w, run, r.include_usage, id, "chat.completion.chunk", created, model);
    return;
  }

  if (!run.run([](size_t, const json&) {}, [](size_t) {})) return;
  if (const std::string err = first_error(run); !err.empty()) throw ApiError(503, err);
  ojson out = chunk_head(id, "chat.completion", created, model);
  out.erase("system_fingerprint");
  ojson choices = ojson::array();
  for (size_t i = 0; i < run.choices.size(); ++i) {
    Runner::Choice& c = run.choices[i];
    ojson msg;
    msg["role"] = "assistant";
    const std::string& text = c.stream->text();
    if (tools_on) {
      const ParsedToolCalls p = ctx.text.parse_tool_calls(text, r.tools);
      msg["content"] = p.content ? json(*p.content) : json(nullptr);
      if (!p.tool_calls.empty()) {
        msg["tool_calls"] = ojson(json(p.tool_calls));
        if (c.finish_reason == "stop") c.finish_reason = "tool_calls";
      } else if (c.finish_reason == "tool_calls") {
        c.finish_reason = "stop";
      }
    } else {
      msg["content"] = text;
    }
    msg["refusal"] = nullptr;
    ojson ch;
    ch["index"] = i;
    ch["message"] = msg;
    ch["logprobs"] =
        r.logprobs ? ojson{{"content", ojson(c.logprobs)}, {"refusal", nullptr}} : ojson(nullptr);
    ch["finish_reason"] = c.finish_reason;
    choices.push_back(ch);
  }
  out["choices"] = choices;
  out["usage"] = ojson(run.usage());
  out["system_fingerprint"] = kFingerprint;
  send_json(w, 200, out);
}

void handle_completions(const ServeContext& ctx, const HttpRequest& req, ResponseWriter& w) {
  const json body = parse_body(req);
  ApiRequest r = parse_completion_request(body, ctx.defaults);
  std::vector<ChoiceJob> jobs;
  for (size_t i = 0; i < r.prompt_texts.size(); ++i) {
    ChoiceJob job;
    job.prompt_index = i;
    std::string text = r.prompt_texts[i];
    if (r.suffix) {
      for (const char* t : {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"})
        if (!ctx.text.token_id(t))
          throw bad_param("suffix",
                          std::string("this model has no ") + t + " token for fill-in-the-middle");
      text = "<|fim_prefix|>" + text + "<|fim_suffix|>" + *r.suffix + "<|fim_middle|>";
    }
    job.prompt = ctx.text.encode(text, true);
    if (r.echo) job.echo = r.prompt_texts[i];
    jobs.push_back(std::move(job));
  }
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    ChoiceJob job;
    job.prompt_index = jobs.size();
    job.prompt = r.prompt_ids[i];
    if (r.echo) job.echo = ctx.text.decode(job.prompt, false);
    jobs.push_back(std::move(job));
  }
  Runner run(ctx, r, w);
  run.submit(jobs);
  const std::string id = random_id("cmpl-");
  const int64_t created = unix_now();
  const std::string& model = ctx.model_name;
  // Legacy logprobs: {tokens, token_logprobs, top_logprobs, text_offset}.
  auto legacy_logprobs = [&](const json& entries, size_t offset0) {
    ojson lp;
    lp["tokens"] = ojson::array();
    lp["token_logprobs"] = ojson::array();
    lp["top_logprobs"] = ojson::array();
    lp["text_offset"] = ojson::array();
    size_t off = offset0;
    for (const json& e : entries) {
      lp["tokens"].push_back(ojson(e["token"]));
      lp["token_logprobs"].push_back(ojson(e["logprob"]));
      ojson top = ojson::object();
      for (const json& t : e["top_logprobs"])
        top[t["token"].get<std::string>()] = ojson(t["logprob"]);
      lp["top_logprobs"].push_back(top);
      lp["text_offset"].push_back(off);
      off += e["token"].get<std::string>().size();
    }
    return lp;
  };

  if (r.stream) {
    w.begin_stream(200, "text/event-stream", kSseHeaders);
    std::vector<size_t> offsets(run.choices.size(), 0);
    auto chunk = [&](size_t i, const std::string& text, const json& finish) {
      ojson j = chunk_head(id, "text_completion", created, model);
      ojson c;
      c["text"] = text;
      c["index"] = i;
      Runner::Choice& ch = run.choices[i];
      if (r.logprobs && !ch.logprobs.empty()) {
        c["logprobs"] = legacy_logprobs(ch.logprobs, offsets[i]);
        for (const json& e : ch.logprobs) offsets[i] += e["token"].get<std::string>().size();
        ch.logprobs = json::array();
      } else {
        c["logprobs"] = nullptr;
      }
      c["finish_reason"] = finish;
      j["choices"] = ojson::array({c});
      if (r.include_usage) j["usage"] = nullptr;
      return send_event(w, j);
    };
    for (size_t i = 0; i < run.choices.size(); ++i)
      if (!jobs[run.choices[i].prompt_index].echo.empty())
        chunk(i, jobs[run.choices[i].prompt_index].echo, nullptr);
    const bool ok = run.run(
        [&](size_t i, const json& d) {
          if (d.contains("content") && d["content"].is_string())
            chunk(i, d["content"].get<std::string>(), nullptr);
        },
        [&](size_t i) {
          if (run.choices[i].error.empty()) chunk(i, "", run.choices[i].finish_reason);
        });
    if (ok) finish_stream(w, run, r.include_usage, id, "text_completion", created, model);
    return;
  }

  if (!run.run([](size_t, const json&) {}, [](size_t) {})) return;
  if (const std::string err = first_error(run); !err.empty()) throw ApiError(503, err);
  ojson out = chunk_head(id, "text_completion", created, model);
  out.erase("system_fingerprint");
  ojson choices = ojson::array();
  for (size_t i = 0; i < run.choices.size(); ++i) {
    const Runner::Choice& c = run.choices[i];
    const std::string& echo = jobs[c.prompt_index].echo;
    ojson ch;
    ch["text"] = echo + c.stream->text();
    ch["index"] = i;
    ch["logprobs"] = r.logprobs ? legacy_logprobs(c.logprobs, echo.size()) : ojson(nullptr);
    ch["finish_reason"] = c.finish_reason;
    choices.push_back(ch);
  }
  out["choices"] = choices;
  out["usage"] = ojson(run.usage());
  out["system_fingerprint"] = kFingerprint;
  send_json(w, 200, out);
}

}  // namespace qcoder::server
