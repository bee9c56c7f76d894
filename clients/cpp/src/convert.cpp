#include "convert.h"

#include "npc/audio/v1/audio.pb.h"
#include "npc/face/v1/face.pb.h"

namespace npcvoice::convert {

namespace audio_pb = ::npc::audio::v1;
namespace face_pb = ::npc::face::v1;

pb::ConverseRequest config(const ConversationOptions& options) {
  pb::ConverseRequest request;
  pb::ConverseConfig& config = *request.mutable_config();
  config.set_npc_id(options.npc_id);
  config.set_player_id(options.player_id);
  config.set_player_name(options.player_name);
  config.set_reply_mode(options.voice_reply ? pb::REPLY_MODE_VOICE : pb::REPLY_MODE_TEXT);
  if (options.input_sample_rate > 0) {
    config.mutable_input_audio()->set_encoding(audio_pb::AUDIO_ENCODING_PCM16);
    config.mutable_input_audio()->set_sample_rate_hz(options.input_sample_rate);
  }
  // The reply is always asked for as PCM16, which is what ReplyAudio::samples holds.
  config.mutable_output_audio()->set_encoding(audio_pb::AUDIO_ENCODING_PCM16);
  config.mutable_output_audio()->set_sample_rate_hz(options.output_sample_rate);
  config.mutable_visemes()->set_frame_rate(options.frame_rate);
  config.mutable_visemes()->set_frame_set(face_pb::FRAME_SET_BOTH);
  config.set_interim_transcripts(options.interim_transcripts);
  if (options.seed) config.set_seed(*options.seed);
  config.mutable_context()->mutable_values()->insert(options.context.begin(), options.context.end());
  config.mutable_scene_npc_ids()->Add(options.scene_npc_ids.begin(), options.scene_npc_ids.end());
  return request;
}

pb::ConverseRequest context(const std::map<std::string, std::string>& values) {
  pb::ConverseRequest request;
  request.mutable_context()->mutable_values()->insert(values.begin(), values.end());
  return request;
}

pb::ConverseRequest event(const std::string& name, const std::string& description,
                          const std::map<std::string, std::string>& parameters, const std::string& npc_id) {
  pb::ConverseRequest request;
  pb::GameEvent& event = *request.mutable_event();
  event.set_name(name);
  event.set_description(description);
  event.mutable_parameters()->insert(parameters.begin(), parameters.end());
  event.set_npc_id(npc_id);
  return request;
}

pb::ConverseRequest speak(const std::string& instruction, const std::string& npc_id, const std::string& to_npc_id,
                          int lines) {
  pb::ConverseRequest request;
  pb::NpcSpeak& speak = *request.mutable_speak();
  speak.set_instruction(instruction);
  speak.set_npc_id(npc_id);
  speak.set_to_npc_id(to_npc_id);
  speak.set_lines(lines);
  return request;
}

pb::ConverseRequest text(const std::string& line) {
  pb::ConverseRequest request;
  request.set_text(line);
  return request;
}

pb::ConverseRequest audio(const std::int16_t* samples, std::size_t count) {
  // Little-endian on the wire whatever the machine's byte order.
  std::string bytes(count * 2, '\0');
  for (std::size_t i = 0; i < count; ++i) {
    const auto value = static_cast<std::uint16_t>(samples[i]);
    bytes[2 * i] = static_cast<char>(value & 0xff);
    bytes[2 * i + 1] = static_cast<char>(value >> 8);
  }
  pb::ConverseRequest request;
  request.set_audio(std::move(bytes));
  return request;
}

pb::ConverseRequest end_of_speech() {
  pb::ConverseRequest request;
  request.mutable_end_of_speech();
  return request;
}

pb::ConverseRequest playback(int turn_index, std::int64_t played_samples) {
  pb::ConverseRequest request;
  request.mutable_playback()->set_turn_index(turn_index);
  request.mutable_playback()->set_played_samples(played_samples);
  return request;
}

namespace {

VisemeFrame frame(const face_pb::VisemeFrame& in) {
  VisemeFrame out;
  out.index = in.index();
  out.time_seconds = in.time_seconds();
  const face_pb::OvrVisemeWeights& o = in.ovr();
  out.ovr = {o.sil(), o.pp(), o.ff(), o.th(), o.dd(), o.kk(), o.ch(), o.ss(),
             o.nn(),  o.rr(), o.aa(), o.e(),  o.ih(), o.oh(), o.ou()};
  const face_pb::ArkitMouthWeights& a = in.arkit();
  out.arkit = {a.jaw_open(),
               a.mouth_close(),
               a.mouth_funnel(),
               a.mouth_pucker(),
               a.mouth_smile_left(),
               a.mouth_smile_right(),
               a.mouth_stretch_left(),
               a.mouth_stretch_right(),
               a.mouth_roll_lower(),
               a.mouth_roll_upper(),
               a.mouth_press_left(),
               a.mouth_press_right(),
               a.mouth_lower_down_left(),
               a.mouth_lower_down_right(),
               a.mouth_upper_up_left(),
               a.mouth_upper_up_right()};
  return out;
}

ReplyAudio reply_audio(const pb::ReplyAudio& in) {
  ReplyAudio out;
  out.turn_index = in.turn_index();
  out.sentence_index = in.sentence_index();
  out.sample_rate = in.format().sample_rate_hz();
  out.start_sample = in.start_sample();
  out.text = in.text();
  const std::string& bytes = in.audio();
  out.samples.resize(bytes.size() / 2);
  for (std::size_t i = 0; i < out.samples.size(); ++i) {
    const auto low = static_cast<std::uint8_t>(bytes[2 * i]);
    const auto high = static_cast<std::uint8_t>(bytes[2 * i + 1]);
    out.samples[i] = static_cast<std::int16_t>(static_cast<std::uint16_t>(low | (high << 8)));
  }
  out.visemes.reserve(in.visemes_size());
  for (const face_pb::VisemeFrame& f : in.visemes()) out.visemes.push_back(frame(f));
  out.npc_id = in.npc_id();
  return out;
}

TurnEnd turn_end(const pb::TurnEnd& in) {
  const pb::LatencyBreakdown& l = in.latency();
  return TurnEnd{
      in.turn_index(), in.player_text(), in.reply_text(), in.interrupted(),
      Latency{l.transcript_seconds(), l.first_token_seconds(), l.first_audio_seconds(), l.total_seconds()},
      in.cue(), in.continued(), in.npc_id(), in.to_npc_id()};
}

std::vector<SceneMember> members(const google::protobuf::RepeatedPtrField<pb::SceneMember>& in) {
  std::vector<SceneMember> out;
  for (const pb::SceneMember& m : in) out.push_back({m.npc_id(), m.display_name(), m.greeting(), m.remembered_turns()});
  return out;
}

}  // namespace

std::optional<Event> event(const pb::ConverseResponse& response) {
  switch (response.event_case()) {
    case pb::ConverseResponse::kStarted: {
      const pb::SessionStarted& s = response.started();
      return Started{s.npc_id(), s.display_name(), s.greeting(), s.remembered_turns(), members(s.scene())};
    }
    case pb::ConverseResponse::kTranscript: {
      const pb::PlayerTranscript& t = response.transcript();
      return Transcript{t.turn_index(), t.text(), t.is_final()};
    }
    case pb::ConverseResponse::kSpeaking:
      return PlayerSpeaking{response.speaking().turn_index()};
    case pb::ConverseResponse::kReplyText:
      return ReplyText{response.reply_text().turn_index(), response.reply_text().delta(),
                       response.reply_text().npc_id()};
    case pb::ConverseResponse::kAudio:
      return reply_audio(response.audio());
    case pb::ConverseResponse::kEmotion: {
      const pb::Emotion& e = response.emotion();
      return Emotion{e.turn_index(), e.emotion(), e.intensity(), e.npc_id()};
    }
    case pb::ConverseResponse::kAction: {
      const pb::Action& a = response.action();
      return Action{a.turn_index(), a.name(), {a.parameters().begin(), a.parameters().end()}, a.npc_id()};
    }
    case pb::ConverseResponse::kInterruption: {
      const pb::Interruption& i = response.interruption();
      return Interruption{i.turn_index(), i.heard_text(), i.heard_samples(), i.npc_id()};
    }
    case pb::ConverseResponse::kTurnEnd:
      return turn_end(response.turn_end());
    case pb::ConverseResponse::kRefused: {
      const pb::TurnRefused& r = response.refused();
      return TurnRefused{r.turn_index(), r.player_text(), r.reason(), r.retry_after_seconds(), r.npc_id()};
    }
    case pb::ConverseResponse::kScene: {
      const pb::SceneChanged& c = response.scene();
      return SceneChanged{members(c.members()), c.addressed_npc_id(),
                          {c.out_of_earshot_npc_ids().begin(), c.out_of_earshot_npc_ids().end()}};
    }
    default:
      return std::nullopt;
  }
}

}  // namespace npcvoice::convert
