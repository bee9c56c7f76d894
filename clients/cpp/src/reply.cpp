#include "npcvoice/reply.h"

#include <cstdio>
#include <type_traits>

#include "file.h"

namespace npcvoice {

namespace {

int turn_of(const Event& event) {
  return std::visit(
      [](const auto& e) -> int {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Started> || std::is_same_v<T, SceneChanged> || std::is_same_v<T, Closed>) {
          return -1;
        } else {
          return e.turn_index;
        }
      },
      event);
}

void write_json(std::FILE* out, const Reply& reply) {
  std::fprintf(out, "{\"sample_rate\": %d, \"frames\": [", reply.sample_rate);
  for (std::size_t i = 0; i < reply.visemes.size(); ++i) {
    const VisemeFrame& frame = reply.visemes[i];
    std::fprintf(out, "%s\n {\"index\": %d, \"time_seconds\": %.6f, \"ovr\": {", i ? "," : "", frame.index,
                 frame.time_seconds);
    for (std::size_t v = 0; v < frame.ovr.size(); ++v) {
      std::fprintf(out, "%s\"%s\": %.4f", v ? ", " : "", kOvrVisemes[v], frame.ovr[v]);
    }
    std::fprintf(out, "}, \"arkit\": {");
    for (std::size_t v = 0; v < frame.arkit.size(); ++v) {
      std::fprintf(out, "%s\"%s\": %.4f", v ? ", " : "", kArkitMouth[v], frame.arkit[v]);
    }
    std::fprintf(out, "}}");
  }
  std::fprintf(out, "\n]}\n");
}

void write_csv(std::FILE* out, const Reply& reply) {
  std::fprintf(out, "time_seconds");
  for (const char* name : kOvrVisemes) std::fprintf(out, ",%s", name);
  for (const char* name : kArkitMouth) std::fprintf(out, ",%s", name);
  std::fprintf(out, "\n");
  for (const VisemeFrame& frame : reply.visemes) {
    std::fprintf(out, "%.6f", frame.time_seconds);
    for (float weight : frame.ovr) std::fprintf(out, ",%.4f", weight);
    for (float weight : frame.arkit) std::fprintf(out, ",%.4f", weight);
    std::fprintf(out, "\n");
  }
}

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

bool Reply::add(const Event& event) {
  const int turn = turn_of(event);
  if (turn < 0) return done();
  if (turn_index < 0) {
    // An Interruption before any other event may be this turn's (cut before anything of it went out) or
    // the turn before's (talked over after its TurnEnd, while it still played): the next event says.
    if (const auto* first = std::get_if<Interruption>(&event)) {
      held_ = *first;
      return done();
    }
    if (held_ && held_->turn_index == turn) interruption = held_;
    held_.reset();
  } else if (turn != turn_index) {
    return done();
  }
  turn_index = turn;
  if (const auto* t = std::get_if<Transcript>(&event); t && t->is_final) {
    player_text = t->text;
  } else if (const auto* delta = std::get_if<ReplyText>(&event)) {
    text += delta->delta;
  } else if (const auto* audio = std::get_if<ReplyAudio>(&event)) {
    sample_rate = audio->sample_rate;
    ++audio_chunks;
    samples.insert(samples.end(), audio->samples.begin(), audio->samples.end());
    visemes.insert(visemes.end(), audio->visemes.begin(), audio->visemes.end());
  } else if (const auto* emotion = std::get_if<Emotion>(&event)) {
    emotions.push_back(*emotion);
  } else if (const auto* action = std::get_if<Action>(&event)) {
    actions.push_back(*action);
  } else if (const auto* interruption_event = std::get_if<Interruption>(&event)) {
    interruption = *interruption_event;
  } else if (const auto* turn_end = std::get_if<TurnEnd>(&event)) {
    end = *turn_end;
    player_text = turn_end->player_text;
  } else if (const auto* refusal = std::get_if<TurnRefused>(&event)) {
    refused = *refusal;
    player_text = refusal->player_text;
  }
  return done();
}

double Reply::seconds() const {
  return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0.0;
}

bool write_visemes(const std::string& path, const Reply& reply) {
  File out = open_file(path, "w");
  if (!out) return false;
  if (ends_with(path, ".csv")) {
    write_csv(out.get(), reply);
  } else {
    write_json(out.get(), reply);
  }
  return finished(out);
}

}  // namespace npcvoice
