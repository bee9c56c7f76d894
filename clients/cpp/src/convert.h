// Every protobuf <-> plain C++ conversion of the client, so the rest never touches generated types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "npc/conversation/v1/conversation.pb.h"
#include "npcvoice/conversation.h"
#include "npcvoice/events.h"

namespace npcvoice::convert {

namespace pb = ::npc::conversation::v1;

pb::ConverseRequest config(const ConversationOptions& options);
pb::ConverseRequest text(const std::string& line);
pb::ConverseRequest audio(const std::int16_t* samples, std::size_t count);
pb::ConverseRequest end_of_speech();
pb::ConverseRequest playback(int turn_index, std::int64_t played_samples);
pb::ConverseRequest context(const std::map<std::string, std::string>& values);
pb::ConverseRequest event(const std::string& name, const std::string& description,
                          const std::map<std::string, std::string>& parameters, const std::string& npc_id);
pb::ConverseRequest speak(const std::string& instruction, const std::string& npc_id, const std::string& to_npc_id,
                          int lines);

// The event in a response; nothing for a kind this build does not know yet (a newer gateway's), which
// the caller skips as protobuf skips unknown fields.
std::optional<Event> event(const pb::ConverseResponse& response);

}  // namespace npcvoice::convert
