// The console sample's command line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sample {

struct Options {
  bool help = false;
  std::string address = "127.0.0.1:50050";
  std::string api_key;
  std::string npc;                 // the first --npc
  std::vector<std::string> scene;  // every --npc, when there are several: a scene
  std::string to;                  // in a scene, the NPC the player's line goes to (the game's choice)
  std::string player = "cpp-sample";
  std::string text;   // a typed line, or
  std::string wav;    // the player's voice, streamed in real time (PCM16 WAV), or
  std::string speak;  // an instruction: the NPC speaks first, or
  std::vector<std::pair<std::string, std::string>> events;  // (name, description): its trigger may speak
  std::map<std::string, std::string> context;               // world context, sent with the config
  bool fast = false;  // stream the WAV as fast as the stream takes it instead of in real time
  std::string out_wav = "reply.wav";
  std::string out_visemes = "reply.json";
  int frame_rate = 0;
  bool text_only = false;
  std::optional<std::int64_t> seed;
  std::string interrupt_with;  // typed once the reply has played interrupt_after_s (barge-in)
  double interrupt_after_s = 0.5;
  double timeout_s = 120;
};

extern const char* const kUsage;

// Fills `options` from the arguments; what is wrong with them, or nothing.
std::string parse(int argc, char** argv, Options& options);

}  // namespace sample
