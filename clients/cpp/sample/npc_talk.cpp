// npc_talk: one turn with an NPC through the npcvoice C++ client, driven the way a game drives it.
//
// The player types a line or speaks a WAV (streamed in real time from a thread of its own, as a capture
// callback would); the main thread plays the part of the game thread: it takes events from the
// conversation, "plays" the reply audio in real time and reports the playback position to the gateway
// (what a barge-in keeps), and at the end writes the reply's audio and viseme frames and prints the
// latency breakdown. Exit status: 0 done, 1 the gateway failed or timed out, 2 bad arguments or input.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "npcvoice/conversation.h"
#include "npcvoice/reply.h"
#include "options.h"

namespace {

using Clock = std::chrono::steady_clock;
using npcvoice::Conversation;
using npcvoice::Event;
using npcvoice::Reply;

constexpr auto kChunk = std::chrono::milliseconds(100);  // microphone pieces and playback reports

// The player's microphone: the WAV in 100 ms pieces, each sent when it would have been captured, then
// push-to-talk released. Stops early when the conversation takes no more input; joined on destruction.
class Microphone {
 public:
  Microphone(Conversation& conversation, std::vector<std::int16_t> samples, int rate, bool realtime)
      : thread_([this, &conversation, samples = std::move(samples), rate, realtime] {
          const std::size_t step = static_cast<std::size_t>(rate) / 10;
          auto due = Clock::now();
          for (std::size_t at = 0; at < samples.size() && !stop_; at += step) {
            if (realtime) std::this_thread::sleep_until(due += kChunk);
            const std::size_t count = std::min(step, samples.size() - at);
            if (!conversation.send_audio(samples.data() + at, count)) return;
          }
          conversation.end_of_speech();
        }) {}
  ~Microphone() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The game's playback of one turn's reply: it starts when the first audio arrives and runs in real
// time, never past the audio received so far (an underrun pauses it, as an audio device would).
class Playback {
 public:
  void on(const Event& event) {
    const auto* audio = std::get_if<npcvoice::ReplyAudio>(&event);
    if (!audio) return;
    if (audio->turn_index != turn_) {
      turn_ = audio->turn_index;
      received_ = 0;
      started_ = Clock::now();
    }
    rate_ = audio->sample_rate;
    received_ += static_cast<std::int64_t>(audio->samples.size());
  }

  std::int64_t played(Clock::time_point now) const {
    if (turn_ < 0) return 0;
    const double seconds = std::chrono::duration<double>(now - started_).count();
    return std::min(received_, static_cast<std::int64_t>(seconds * rate_));
  }

  double played_seconds(Clock::time_point now) const { return rate_ ? double(played(now)) / rate_ : 0.0; }
  bool playing(Clock::time_point now) const { return turn_ >= 0 && played(now) < received_; }

  // Sends the position every 100 ms while a reply plays (and at once when `now_please`).
  void report(Conversation& conversation, Clock::time_point now, bool now_please = false) {
    if (turn_ < 0 || (!now_please && now < next_report_)) return;
    last_ = played(now);
    conversation.send_playback(turn_, last_);
    ++reports_;
    next_report_ = now + kChunk;
  }

  int turn() const { return turn_; }
  std::int64_t last() const { return last_; }
  int reports() const { return reports_; }

 private:
  int turn_ = -1;
  int rate_ = 0;
  std::int64_t received_ = 0;
  std::int64_t last_ = 0;
  int reports_ = 0;
  Clock::time_point started_;
  Clock::time_point next_report_;
};

void print_event(const Event& event) {
  if (const auto* started = std::get_if<npcvoice::Started>(&event)) {
    std::printf("started: %s (npc %s, remembers %d turns)\n", started->display_name.c_str(),
                started->npc_id.c_str(), started->remembered_turns);
    std::printf("greeting: %s\n", started->greeting.c_str());
  } else if (const auto* heard = std::get_if<npcvoice::Transcript>(&event); heard && heard->is_final) {
    std::printf("transcript: %s\n", heard->text.c_str());
  } else if (const auto* emotion = std::get_if<npcvoice::Emotion>(&event)) {
    std::printf("emotion: %s %.2f\n", emotion->emotion.c_str(), emotion->intensity);
  } else if (const auto* action = std::get_if<npcvoice::Action>(&event)) {
    std::printf("action: %s", action->name.c_str());
    for (const auto& [name, value] : action->parameters) std::printf(" %s=%s", name.c_str(), value.c_str());
    std::printf("\n");
  } else if (const auto* cut = std::get_if<npcvoice::Interruption>(&event)) {
    std::printf("interrupted: turn %d at %lld samples, heard \"%s\"\n", cut->turn_index,
                static_cast<long long>(cut->heard_samples), cut->heard_text.c_str());
  } else if (const auto* refused = std::get_if<npcvoice::TurnRefused>(&event)) {
    std::printf("refused: turn %d (%s), retry after %.1f s\n", refused->turn_index, refused->reason.c_str(),
                refused->retry_after_seconds);
  }
  std::fflush(stdout);
}

bool fail(const std::string& message) {
  std::fprintf(stderr, "npc_talk: %s\n", message.c_str());
  return false;
}

// Whether the stream ended here, saying why on stderr (an end with OK before the reply is a failure too).
bool ended(const Event& event) {
  const auto* closed = std::get_if<npcvoice::Closed>(&event);
  if (closed)
    fail("the conversation ended: gRPC status " + std::to_string(closed->code) + ": " + closed->message);
  return closed != nullptr;
}

// A refused turn (the NPC busy): its line is sent again once the gateway's retry_after has passed, as a
// game would, a few times at most. A spoken line goes again as the text that was heard.
class Retry {
 public:
  // Whether the refused turn will be sent again (false: give up).
  bool schedule(const npcvoice::TurnRefused& refused, const sample::Options& options, Clock::time_point now) {
    if (tries_ >= kMaxTries || (refused.player_text.empty() && options.speak.empty())) return false;
    ++tries_;
    line_ = refused.player_text;
    due_ = now + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(refused.retry_after_seconds));
    return true;
  }
  void send_when_due(Conversation& conversation, const sample::Options& options, Clock::time_point now) {
    if (!due_ || now < *due_) return;
    due_.reset();
    std::printf("retry: %s\n", line_.empty() ? options.speak.c_str() : line_.c_str());
    if (line_.empty()) {
      conversation.ask_to_speak(options.speak);
    } else {
      conversation.send_text(line_);
    }
  }

 private:
  static constexpr int kMaxTries = 3;
  int tries_ = 0;
  std::string line_;
  std::optional<Clock::time_point> due_;
};

// The game loop of one exchange: events in, playback positions out, and the barge-in when asked for.
// Returns the reply of the last turn (the barge-in's line, if it cut the first one).
bool converse(Conversation& conversation, const sample::Options& options, Clock::time_point deadline,
              Reply& reply, Playback& playback) {
  bool barged_in = options.interrupt_with.empty();
  bool typed = false;  // the barge-in line was sent in this exchange
  std::optional<Reply> sent;  // a reply all sent and still playing, which the barge-in may yet cut
  Retry retry;
  while (Clock::now() < deadline) {
    const std::optional<Event> event = conversation.wait(std::chrono::milliseconds(20));
    const auto now = Clock::now();
    playback.report(conversation, now);
    retry.send_when_due(conversation, options, now);
    if (!barged_in && playback.turn() >= 0 && playback.played_seconds(now) >= options.interrupt_after_s) {
      playback.report(conversation, now, true);  // so what was heard is exactly where it stopped
      std::printf("barge-in: typed after %lld samples played\n", static_cast<long long>(playback.last()));
      conversation.send_text(options.interrupt_with);
      barged_in = typed = true;
    }
    if (sent && !barged_in && !playback.playing(now)) {
      std::printf("barge-in: none, the reply ended first\n");
      reply = *sent;
      return true;
    }
    if (!event) continue;
    print_event(*event);
    if (ended(*event)) return false;
    playback.on(*event);
    if (!reply.add(*event)) continue;
    if (reply.refused) {
      if (!retry.schedule(*reply.refused, options, now)) return fail("the NPC stayed busy");
      reply = Reply{};
      continue;
    }
    if (!barged_in && !reply.end->interrupted && playback.playing(now)) {
      // All sent, still playing: the player can still talk over it (the gateway's Interruption then comes
      // after its TurnEnd, and memory keeps what was heard).
      std::printf("barge-in: waiting, the reply was all sent and still plays\n");
      sent = reply;
      reply = Reply{};
      continue;
    }
    if (!barged_in) std::printf("barge-in: none, the reply ended first\n");
    if (typed && !reply.end->interrupted && reply.player_text != options.interrupt_with) {
      // Typed over a reply whose TurnEnd was still on its way (a short reply, all of it sent): its
      // Interruption and the barge-in line's own reply follow.
      reply = Reply{};
      continue;
    }
    if (!reply.end->interrupted) return true;
    std::printf("turn %d ended %s\n", reply.end->turn_index,
                reply.end->continued ? "unsaid: the player went on with the line" : "interrupted");
    reply = Reply{};
  }
  return fail("no reply in time");
}

void print_reply(const Reply& reply, const sample::Options& options, const Playback& playback) {
  const std::string not_written = "not written (text only)";
  std::printf("player: %s\n", reply.player_text.c_str());
  std::printf("npc: %s\n", reply.end->npc_id.c_str());
  if (!reply.end->cue.empty()) std::printf("cue: %s\n", reply.end->cue.c_str());
  std::printf("reply: %s\n", reply.text.c_str());
  std::printf("audio: %.3f s at %d Hz in %d chunks -> %s\n", reply.seconds(), reply.sample_rate,
              reply.audio_chunks, (options.text_only ? not_written : options.out_wav).c_str());
  std::printf("visemes: %zu frames -> %s\n", reply.visemes.size(),
              (options.text_only ? not_written : options.out_visemes).c_str());
  std::printf("playback: %d positions reported, the last %lld samples of turn %d\n", playback.reports(),
              static_cast<long long>(playback.last()), playback.turn());
  const npcvoice::Latency& l = reply.end->latency;
  std::printf("latency: transcript %.3f s, first token %.3f s, first audio %.3f s, total %.3f s\n",
              l.transcript_seconds, l.first_token_seconds, l.first_audio_seconds, l.total_seconds);
}

// Input closed: the gateway ends the stream once the turn is stored; anything but OK is a failure.
bool close(Conversation& conversation, Clock::time_point deadline) {
  conversation.finish_input();
  while (Clock::now() < deadline) {
    const std::optional<Event> event = conversation.wait(std::chrono::milliseconds(100));
    if (!event) continue;
    if (const auto* closed = std::get_if<npcvoice::Closed>(&*event)) return closed->ok() || !ended(*event);
  }
  return fail("the conversation did not close in time");
}

}  // namespace

int main(int argc, char** argv) {
  sample::Options options;
  std::string error = sample::parse(argc, argv, options);
  if (!error.empty()) {
    std::fprintf(stderr, "npc_talk: %s\n%s", error.c_str(), sample::kUsage);
    return 2;
  }
  if (options.help) {
    std::printf("%s", sample::kUsage);
    return 0;
  }
  std::vector<std::int16_t> voice;
  int voice_rate = 0;
  if (!options.wav.empty() && !npcvoice::read_wav(options.wav, voice, voice_rate, error)) {
    fail(error);
    return 2;
  }
  npcvoice::ConversationOptions settings;
  settings.address = options.address;
  settings.api_key = options.api_key;
  settings.npc_id = options.npc;
  settings.player_id = options.player;
  settings.voice_reply = !options.text_only;
  settings.input_sample_rate = voice_rate;
  settings.frame_rate = options.frame_rate;
  settings.seed = options.seed;
  settings.context = options.context;
  settings.scene_npc_ids = options.scene;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(options.timeout_s));
  Conversation conversation(settings);
  if (!options.to.empty()) conversation.address(options.to);
  std::optional<Microphone> microphone;
  for (const auto& [name, description] : options.events) conversation.send_event(name, description);
  if (voice_rate) {
    microphone.emplace(conversation, std::move(voice), voice_rate, !options.fast);
  } else if (!options.text.empty()) {
    conversation.send_text(options.text);
  } else if (!options.speak.empty()) {
    conversation.ask_to_speak(options.speak);
  }  // else: the reply the NPC's trigger for the events makes
  Reply reply;
  Playback playback;
  if (!converse(conversation, options, deadline, reply, playback)) return 1;
  microphone.reset();
  if (!close(conversation, deadline)) return 1;
  print_reply(reply, options, playback);
  if (options.text_only) return 0;
  if (!npcvoice::write_wav(options.out_wav, reply.samples, reply.sample_rate)) {
    fail("cannot write " + options.out_wav);
    return 1;
  }
  if (!npcvoice::write_visemes(options.out_visemes, reply)) {
    fail("cannot write " + options.out_visemes);
    return 1;
  }
  return 0;
}
