// What the conversation gateway sends during a Converse stream, as plain C++ values.
//
// These mirror npc.conversation.v1.ConverseResponse (protos/npc/conversation/v1/conversation.proto) but
// name no protobuf type, so game code can include them without protobuf's or gRPC's headers.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace npcvoice {

// The 15 Meta/Oculus OVR visemes, in the order of VisemeFrame::ovr.
inline constexpr std::array<const char*, 15> kOvrVisemes = {"sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS",
                                                            "nn",  "RR", "aa", "E",  "ih", "oh", "ou"};

// The ARKit mouth blendshapes, in the order of VisemeFrame::arkit (ARKit's own names).
inline constexpr std::array<const char*, 16> kArkitMouth = {
    "jawOpen",          "mouthClose",       "mouthFunnel",        "mouthPucker",         "mouthSmileLeft",
    "mouthSmileRight",  "mouthStretchLeft", "mouthStretchRight",  "mouthRollLower",      "mouthRollUpper",
    "mouthPressLeft",   "mouthPressRight",  "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight"};

// One frame of lip sync; time_seconds is on the turn's audio timeline (sample / sample rate).
struct VisemeFrame {
  int index = 0;
  double time_seconds = 0;
  std::array<float, 15> ovr{};    // weights in [0, 1], kOvrVisemes order; all 0 if not requested
  std::array<float, 16> arkit{};  // weights in [0, 1], kArkitMouth order; all 0 if not requested
};

// The gateway accepted the config: who the NPC is and how much it remembers of this player.
struct Started {
  std::string npc_id;
  std::string display_name;
  std::string greeting;
  int remembered_turns = 0;
};

// What the speech service heard the player say (interim ones only when asked for).
struct Transcript {
  int turn_index = 0;
  std::string text;
  bool is_final = false;
};

// The player's voice was detected, before any transcript: stop the NPC audio still playing.
struct PlayerSpeaking {
  int turn_index = 0;  // the turn this speech will start
};

// Text to append to the reply shown so far.
struct ReplyText {
  int turn_index = 0;
  std::string delta;
};

// One sentence of the reply's audio (PCM16 mono) with the viseme frames for exactly its samples.
struct ReplyAudio {
  int turn_index = 0;
  int sentence_index = 0;
  int sample_rate = 0;
  std::int64_t start_sample = 0;  // where it starts in the turn's audio
  std::vector<std::int16_t> samples;
  std::string text;
  std::vector<VisemeFrame> visemes;
};

struct Emotion {
  int turn_index = 0;
  std::string emotion;
  float intensity = 0;
};

struct Action {
  int turn_index = 0;
  std::string name;
  std::map<std::string, std::string> parameters;
};

// The player talked (or typed) over the reply: it stopped, and memory keeps only what was heard.
struct Interruption {
  int turn_index = 0;
  std::string heard_text;
  std::int64_t heard_samples = 0;
};

// Seconds from the end of the player's speech (or the typed line) to each stage of the reply.
struct Latency {
  double transcript_seconds = 0;
  double first_token_seconds = 0;
  double first_audio_seconds = 0;
  double total_seconds = 0;
};

struct TurnEnd {
  int turn_index = 0;
  std::string player_text;
  std::string reply_text;
  bool interrupted = false;
  Latency latency;
  std::string cue;  // when the NPC spoke first: what prompted it (player_text is then empty)
  // The player went on talking before any of the reply reached them: player_text was only the start of
  // their line, which the next turn holds whole; nothing of this turn was said or remembered.
  bool continued = false;
};

// The gateway had no room for the turn now (the dialogue service at its limit): nothing of it was said
// or remembered, and the conversation goes on. Send the line again after retry_after_seconds (a spoken
// line too: player_text is what was heard, and can be sent as text).
struct TurnRefused {
  int turn_index = 0;
  std::string player_text;  // empty when the NPC was to speak first
  std::string reason;       // in words, for logs (not for the player)
  double retry_after_seconds = 0;
};

// The stream is over; the last event of every conversation. code is the gRPC status code (0 = OK).
struct Closed {
  int code = 0;
  std::string message;
  bool ok() const { return code == 0; }
};

using Event = std::variant<Started, Transcript, PlayerSpeaking, ReplyText, ReplyAudio, Emotion, Action,
                           Interruption, TurnEnd, TurnRefused, Closed>;

}  // namespace npcvoice
