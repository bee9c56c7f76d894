// One conversation with an NPC: a Converse stream to the npcvoice conversation gateway.
//
//   npcvoice::ConversationOptions options;
//   options.npc_id = "blacksmith_hilda";
//   options.player_id = "player-1";
//   npcvoice::Conversation conversation(options);   // connects and sends the config
//   conversation.send_text("Can you repair my sword?");
//   while (auto event = conversation.wait(std::chrono::seconds(30))) { ... }   // or poll() once a frame
//
// Threads: the Conversation owns two, one reading the stream and one writing it, and joins them when it
// is destroyed. No game code runs on them: events wait in a queue until poll() or wait() takes them, on
// whatever thread calls those (the game thread). The send_* functions may be called from any thread (a
// microphone callback, the game thread); they queue the message and return at once, and the writing
// thread sends them in the order they were queued. Nothing here waits on the network but wait().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "npcvoice/events.h"

namespace npcvoice {

struct ConversationOptions {
  std::string address = "127.0.0.1:50050";  // the gateway, host:port (plaintext gRPC)
  std::string api_key;                      // sent as "authorization: Bearer <key>" when set
  std::string npc_id;
  std::string player_id;
  std::string player_name;     // how the NPC may address the player; optional
  bool voice_reply = true;     // false: reply text and events only, no audio or visemes
  int input_sample_rate = 0;   // the microphone's rate (PCM16 mono); 0 when the player only types
  int output_sample_rate = 0;  // the reply audio's rate; 0 = the voice's own
  int frame_rate = 0;          // viseme frames per second: 24, 30 or 60; 0 = the persona's
  bool interim_transcripts = false;
  std::optional<std::int64_t> seed;  // the same lines and memory give the same replies
  // What the game knows when the conversation starts: location, time_of_day, weather, what the player
  // carries, quest states (lower_snake_case keys). send_context updates it later.
  std::map<std::string, std::string> context;
  // A scene: several NPCs in one conversation (npc_id empty, or one of them: the one the player talks to
  // first). Each line goes to one NPC (address(), else the one it calls by name, else the last who spoke
  // to the player); events then name who speaks (npc_id), and the NPCs in earshot remember what they heard.
  std::vector<std::string> scene_npc_ids;
};

class Conversation {
 public:
  // Opens the stream and sends the config in the background; does not wait for the gateway (the first
  // event is Started, or Closed with the reason, such as an unknown NPC or an unreachable address).
  explicit Conversation(const ConversationOptions& options);
  // Cancels the stream if it is still open and joins the reading thread.
  ~Conversation();
  Conversation(const Conversation&) = delete;
  Conversation& operator=(const Conversation&) = delete;

  // Each queues one message; false once the stream takes no more (input finished, stream over).
  bool send_text(const std::string& line);                          // a typed line starts a turn
  bool send_audio(const std::int16_t* samples, std::size_t count);  // microphone audio, as captured
  bool end_of_speech();                                             // push-to-talk released
  // How many samples of turn `turn_index`'s reply the game has played: on a barge-in, memory keeps
  // exactly the words heard up to there. Send it every few frames while a reply plays.
  bool send_playback(int turn_index, std::int64_t played_samples);
  // World context now: replaces these keys' values (an empty value removes a key).
  bool send_context(const std::map<std::string, std::string>& values);
  // Something that happened in the game: the NPC remembers it; its persona's trigger for the event may
  // make it speak (a turn with an empty player_text and a cue).
  // In a scene, npc_id is the NPC it happened to (empty: the one the player talks to).
  bool send_event(const std::string& name, const std::string& description,
                  const std::map<std::string, std::string>& parameters = {}, const std::string& npc_id = "");
  // The NPC speaks first, prompted by this instruction (a scripted scene, a greeting). In a scene, npc_id
  // speaks (empty: the one the player talks to), and with to_npc_id it says it to that NPC, who answers:
  // an exchange of `lines` lines taking turns (0: 2), one voice at a time; a player line interrupts it.
  bool ask_to_speak(const std::string& instruction, const std::string& npc_id = "",
                    const std::string& to_npc_id = "", int lines = 0);
  // Scenes. The NPC the player talks to now (gaze, a UI choice); "" lets names decide again.
  bool address(const std::string& npc_id);
  // The NPCs that do not hear the player (nor the replies) from now on; every other one does.
  bool set_out_of_earshot(const std::vector<std::string>& npc_ids);
  // NPCs walk in (a one-NPC conversation becomes a scene) or leave (one speaking stops, as heard).
  bool join(const std::vector<std::string>& npc_ids);
  bool leave(const std::vector<std::string>& npc_ids);

  // No more input, after what is queued: the gateway finishes the turn in progress, then ends the
  // stream (Closed).
  void finish_input();
  // Stops at once; the stream ends with Closed (code CANCELLED).
  void cancel();

  std::optional<Event> poll();  // the next event, or nothing yet (never blocks)
  std::optional<Event> wait(std::chrono::milliseconds timeout);  // the next event, or nothing in time

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace npcvoice
