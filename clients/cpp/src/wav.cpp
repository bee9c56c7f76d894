// RIFF/WAVE, 16-bit PCM only: what a game's microphone capture and the gateway's replies use.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "file.h"
#include "npcvoice/reply.h"

namespace npcvoice {

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value & 0xff));
  out.push_back(static_cast<std::uint8_t>(value >> 8));
}

std::uint32_t get_u32(const std::uint8_t* in) {
  return in[0] | (in[1] << 8) | (in[2] << 16) | (static_cast<std::uint32_t>(in[3]) << 24);
}

std::uint16_t get_u16(const std::uint8_t* in) { return static_cast<std::uint16_t>(in[0] | (in[1] << 8)); }

std::vector<std::uint8_t> read_all(std::FILE* in) {
  std::vector<std::uint8_t> bytes;
  std::uint8_t block[65536];
  std::size_t count;
  while ((count = std::fread(block, 1, sizeof block, in)) > 0)
    bytes.insert(bytes.end(), block, block + count);
  return bytes;
}

bool failed(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

struct Format {
  int channels = 0;
  int sample_rate = 0;
  int bits = 0;
  bool pcm = false;
};

}  // namespace

bool write_wav(const std::string& path, const std::vector<std::int16_t>& samples, int sample_rate) {
  const auto data_bytes = static_cast<std::uint32_t>(samples.size() * 2);
  std::vector<std::uint8_t> out;
  out.reserve(44 + data_bytes);
  out.insert(out.end(), {'R', 'I', 'F', 'F'});
  put_u32(out, 36 + data_bytes);
  out.insert(out.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put_u32(out, 16);
  put_u16(out, 1);  // PCM
  put_u16(out, 1);  // mono
  put_u32(out, static_cast<std::uint32_t>(sample_rate));
  put_u32(out, static_cast<std::uint32_t>(sample_rate) * 2);  // bytes per second
  put_u16(out, 2);                                            // bytes per frame
  put_u16(out, 16);                                           // bits per sample
  out.insert(out.end(), {'d', 'a', 't', 'a'});
  put_u32(out, data_bytes);
  for (std::int16_t sample : samples) put_u16(out, static_cast<std::uint16_t>(sample));
  File file = open_file(path, "wb");
  if (!file) return false;
  std::fwrite(out.data(), 1, out.size(), file.get());
  return finished(file);
}

bool read_wav(const std::string& path, std::vector<std::int16_t>& samples, int& sample_rate,
              std::string& error) {
  File file = open_file(path, "rb");
  if (!file) return failed(error, path + ": cannot open");
  const std::vector<std::uint8_t> bytes = read_all(file.get());
  if (bytes.size() < 12 || std::memcmp(bytes.data(), "RIFF", 4) || std::memcmp(bytes.data() + 8, "WAVE", 4)) {
    return failed(error, path + ": not a WAV file");
  }
  Format format;
  // Chunks follow the header, each an id, a size and its bytes (padded to even sizes).
  for (std::size_t at = 12; at + 8 <= bytes.size();) {
    const std::uint8_t* chunk = bytes.data() + at;
    const std::size_t size = std::min<std::size_t>(get_u32(chunk + 4), bytes.size() - at - 8);
    if (!std::memcmp(chunk, "fmt ", 4) && size >= 16) {
      const std::uint16_t tag = get_u16(chunk + 8);
      format = {get_u16(chunk + 10), static_cast<int>(get_u32(chunk + 12)), get_u16(chunk + 22),
                tag == 1 || tag == 0xfffe};  // PCM, or PCM in WAVE_FORMAT_EXTENSIBLE
    } else if (!std::memcmp(chunk, "data", 4)) {
      if (!format.pcm || format.bits != 16 || format.channels < 1) {
        return failed(error, path + ": only 16-bit PCM WAV files are supported");
      }
      const std::size_t frames = size / (2 * format.channels);
      samples.assign(frames, 0);
      for (std::size_t i = 0; i < frames; ++i) {
        int sum = 0;  // a stereo (or wider) file is mixed down to the mono the gateway takes
        for (int c = 0; c < format.channels; ++c) {
          sum += static_cast<std::int16_t>(get_u16(chunk + 8 + 2 * (i * format.channels + c)));
        }
        samples[i] = static_cast<std::int16_t>(sum / format.channels);
      }
      sample_rate = format.sample_rate;
      return true;
    }
    at += 8 + size + (size & 1);
  }
  return failed(error, path + ": no audio data");
}

}  // namespace npcvoice
