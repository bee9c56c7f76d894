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

// One NPC of a scene, and how much it remembers of this player.
struct SceneMember {
  std::string npc_id;
  std::string display_name;
  std::string greeting;
  int remembered_turns = 0;
};

// The gateway accepted the config: who the NPC is and how much it remembers of this player.
struct Started {
  std::string npc_id;
  std::string display_name;
  std::string greeting;
  int remembered_turns = 0;
  std::vector<SceneMember> scene;  // a scene's NPCs (the first as above); empty for one NPC
};

// The scene after a change (an NPC joined or left, the addressed NPC or earshot changed).
struct SceneChanged {
  std::vector<SceneMember> members;
  std::string addressed_npc_id;
  std::vector<std::string> out_of_earshot_npc_ids;
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
  std::string npc_id;  // the NPC speaking (every event of a turn names it; in a scene, one of several)
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
  std::string npc_id;
};

struct Emotion {
  int turn_index = 0;
  std::string emotion;
  float intensity = 0;
  std::string npc_id;
};

struct Action {
  int turn_index = 0;
  std::string name;
  std::map<std::string, std::string> parameters;
  std::string npc_id;
};

// The player talked (or typed) over the reply: it stopped, and memory keeps only what was heard.
struct Interruption {
  int turn_index = 0;
  std::string heard_text;
  std::int64_t heard_samples = 0;
  std::string npc_id;
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
  std::string npc_id;
  std::string to_npc_id;  // in a scene, the NPC this line was said to (an exchange); empty: the player
};

// The gateway had no room for the turn now (the dialogue service at its limit): nothing of it was said
// or remembered, and the conversation goes on. Send the line again after retry_after_seconds (a spoken
// line too: player_text is what was heard, and can be sent as text).
struct TurnRefused {
  int turn_index = 0;
  std::string player_text;  // empty when the NPC was to speak first
  std::string reason;       // in words, for logs (not for the player)
  double retry_after_seconds = 0;
  std::string npc_id;  // the NPC that was to answer
};

// The stream is over; the last event of every conversation. code is the gRPC status code (0 = OK).
struct Closed {
  int code = 0;
  std::string message;
  bool ok() const { return code == 0; }
};

using Event = std::variant<Started, Transcript, PlayerSpeaking, ReplyText, ReplyAudio, Emotion, Action,
                           Interruption, TurnEnd, TurnRefused, SceneChanged, Closed>;

}  // namespace npcvoice
