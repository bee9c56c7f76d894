// A turn's reply gathered from its events, and the files a sample or a tool writes from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "npcvoice/events.h"

namespace npcvoice {

struct Reply {
  int turn_index = -1;  // the turn this reply belongs to: the first one it is given an event of (but an
                        // Interruption that comes first is held until the next event says whose it is:
                        // this turn's, cut before anything of it went out, or the turn before's, talked
                        // over after its TurnEnd while it still played)
  std::string player_text;
  std::string text;
  int sample_rate = 0;
  int audio_chunks = 0;
  std::vector<std::int16_t> samples;  // every sentence's audio, joined in order
  std::vector<VisemeFrame> visemes;   // their frames, on the same timeline
  std::vector<Emotion> emotions;
  std::vector<Action> actions;
  std::optional<Interruption> interruption;
  std::optional<TurnEnd> end;
  std::optional<TurnRefused> refused;  // the turn was refused (nothing said): send the line again later

  // Takes one event into the reply (events of other turns are left out); true once the turn has ended
  // or was refused.
  bool add(const Event& event);
  bool done() const { return end.has_value() || refused.has_value(); }
  double seconds() const;

 private:
  std::optional<Interruption> held_;  // an Interruption that came first, its turn not yet known
};

// PCM16 mono WAV files. read_wav averages the channels of a stereo file; it takes 16-bit PCM only.
bool write_wav(const std::string& path, const std::vector<std::int16_t>& samples, int sample_rate);
bool read_wav(const std::string& path, std::vector<std::int16_t>& samples, int& sample_rate,
              std::string& error);

// The reply's viseme frames: CSV when the path ends in ".csv" (one row per frame: time, 15 OVR weights,
// 16 ARKit weights, under their standard names), JSON otherwise ({"sample_rate", "frames": [...]}).
bool write_visemes(const std::string& path, const Reply& reply);

}  // namespace npcvoice
