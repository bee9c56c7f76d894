#include "options.h"

#include <cstdint>
#include <cstdlib>

namespace sample {

const char* const kUsage =
    "usage: npc_talk --npc ID (--text LINE | --wav FILE | --speak INSTRUCTION | --event ...) [options]\n"
    "  --help                  this list\n"
    "  --address HOST:PORT     the conversation gateway (default 127.0.0.1:50050)\n"
    "  --npc ID                the NPC; repeated, a scene of several (each line goes to the one it names)\n"
    "  --to ID                 in a scene, the NPC the line goes to (as a game's gaze or UI choice)\n"
    "  --api-key KEY           sent as 'authorization: Bearer KEY'\n"
    "  --player ID             the player's id (default cpp-sample)\n"
    "  --text LINE             type LINE to the NPC\n"
    "  --wav FILE              say FILE (16-bit PCM WAV), streamed in real time as a microphone would\n"
    "  --fast                  stream the WAV as fast as possible instead\n"
    "  --speak INSTRUCTION     the NPC speaks first, prompted by INSTRUCTION\n"
    "  --event NAME=SENTENCE   a game event, sent first (repeatable); alone, wait for the reply the\n"
    "                          NPC's trigger for it makes\n"
    "  --context KEY=VALUE     world context sent with the config (repeatable), e.g. weather=snow\n"
    "  --out-wav FILE          the reply's audio (default reply.wav)\n"
    "  --out-visemes FILE      the reply's viseme frames, JSON, or CSV if FILE ends in .csv\n"
    "                          (default reply.json)\n"
    "  --frame-rate N          viseme frames per second: 24, 30 or 60 (default: the persona's)\n"
    "  --text-only             ask for the reply's text and events only\n"
    "  --seed N                the same seed and memory give the same reply\n"
    "  --interrupt-with LINE   barge in: type LINE once the reply has played --interrupt-after\n"
    "  --interrupt-after S     seconds of reply played before barging in (default 0.5)\n"
    "  --timeout S             give up after S seconds (default 120)\n";

namespace {

bool to_number(const std::string& text, double& out) {
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0';
}

bool to_integer(const std::string& text, std::int64_t& out) {
  char* end = nullptr;
  out = std::strtoll(text.c_str(), &end, 10);
  return !text.empty() && *end == '\0';
}

}  // namespace

std::string parse(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "--help" || name == "-h") {
      options.help = true;
      return "";
    }
    if (name == "--fast" || name == "--text-only") {
      (name == "--fast" ? options.fast : options.text_only) = true;
      continue;
    }
    if (i + 1 >= argc) return "unknown argument, or one without its value: " + name;
    const std::string value = argv[++i];
    double number = 0;
    std::int64_t integer = 0;
    if (name == "--address") {
      options.address = value;
    } else if (name == "--api-key") {
      options.api_key = value;
    } else if (name == "--npc") {
      if (options.npc.empty()) options.npc = value;
      options.scene.push_back(value);
    } else if (name == "--to") {
      options.to = value;
    } else if (name == "--player") {
      options.player = value;
    } else if (name == "--text") {
      options.text = value;
    } else if (name == "--wav") {
      options.wav = value;
    } else if (name == "--out-wav") {
      options.out_wav = value;
    } else if (name == "--out-visemes") {
      options.out_visemes = value;
    } else if (name == "--speak") {
      options.speak = value;
    } else if ((name == "--event" || name == "--context") && value.find('=') != std::string::npos) {
      const auto equals = value.find('=');
      auto pair = std::make_pair(value.substr(0, equals), value.substr(equals + 1));
      if (name == "--event") {
        options.events.push_back(std::move(pair));
      } else {
        options.context.insert(std::move(pair));
      }
    } else if (name == "--interrupt-with") {
      options.interrupt_with = value;
    } else if (name == "--frame-rate" && to_integer(value, integer)) {
      options.frame_rate = static_cast<int>(integer);
    } else if (name == "--seed" && to_integer(value, integer)) {
      options.seed = integer;
    } else if (name == "--interrupt-after" && to_number(value, number)) {
      options.interrupt_after_s = number;
    } else if (name == "--timeout" && to_number(value, number)) {
      options.timeout_s = number;
    } else {
      return "unknown argument, or not a number: " + name + " " + value;
    }
  }
  if (options.npc.empty()) return "--npc is required";
  if (options.scene.size() < 2) options.scene.clear();  // one NPC: a plain conversation
  if (!options.to.empty() && options.scene.empty()) return "--to needs a scene (--npc given twice or more)";
  const int inputs = !options.text.empty() + !options.wav.empty() + !options.speak.empty();
  if (inputs > 1 || (inputs == 0 && options.events.empty())) {
    return "give one of --text, --wav or --speak, or --event alone";
  }
  return "";
}

}  // namespace sample
