#include "npcvoice/conversation.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "convert.h"
#include "npc/conversation/v1/conversation.grpc.pb.h"

namespace npcvoice {

namespace pb = ::npc::conversation::v1;

// A synchronous ClientReaderWriter read by one thread of its own: gRPC allows one reader and one writer
// at a time on a stream, so reads stay on that thread and writes take a lock.
struct Conversation::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::ConversationService::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::ConverseRequest, pb::ConverseResponse>> stream;

  std::mutex write_lock;
  bool input_open = true;  // guarded by write_lock

  std::mutex queue_lock;
  std::condition_variable queue_changed;
  std::deque<Event> events;  // guarded by queue_lock

  std::thread reader;

  bool write(const pb::ConverseRequest& request) {
    std::lock_guard<std::mutex> lock(write_lock);
    if (!input_open) return false;
    if (!stream->Write(request)) input_open = false;  // the stream is over; Closed says why
    return input_open;
  }

  void push(Event event) {
    {
      std::lock_guard<std::mutex> lock(queue_lock);
      events.push_back(std::move(event));
    }
    queue_changed.notify_all();
  }

  // The reading thread. Nothing may escape it (an exception leaving a thread ends the game), so a
  // failure becomes the Closed event like any other end of the stream.
  void read_all() noexcept {
    try {
      pb::ConverseResponse response;
      while (stream->Read(&response)) {
        if (auto event = convert::event(response)) push(std::move(*event));
      }
      const grpc::Status status = stream->Finish();
      push(Closed{static_cast<int>(status.error_code()), status.error_message()});
    } catch (const std::exception& error) {
      push(Closed{static_cast<int>(grpc::StatusCode::INTERNAL), error.what()});
    } catch (...) {
      push(Closed{static_cast<int>(grpc::StatusCode::INTERNAL), "unknown error while reading"});
    }
  }
};

Conversation::Conversation(const ConversationOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->channel = grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials());
  impl_->stub = pb::ConversationService::NewStub(impl_->channel);
  if (!options.api_key.empty()) impl_->context.AddMetadata("authorization", "Bearer " + options.api_key);
  impl_->stream = impl_->stub->Converse(&impl_->context);
  impl_->write(convert::config(options));
  impl_->reader = std::thread([impl = impl_.get()] { impl->read_all(); });
}

Conversation::~Conversation() {
  // The reading thread ends only when the stream does; cancelling ends it now.
  impl_->context.TryCancel();
  if (impl_->reader.joinable()) impl_->reader.join();
}

bool Conversation::send_text(const std::string& line) { return impl_->write(convert::text(line)); }

bool Conversation::send_audio(const std::int16_t* samples, std::size_t count) {
  return impl_->write(convert::audio(samples, count));
}

bool Conversation::end_of_speech() { return impl_->write(convert::end_of_speech()); }

bool Conversation::send_playback(int turn_index, std::int64_t played_samples) {
  return impl_->write(convert::playback(turn_index, played_samples));
}

void Conversation::finish_input() {
  std::lock_guard<std::mutex> lock(impl_->write_lock);
  if (impl_->input_open) impl_->stream->WritesDone();
  impl_->input_open = false;
}

void Conversation::cancel() { impl_->context.TryCancel(); }

std::optional<Event> Conversation::poll() { return wait(std::chrono::milliseconds(0)); }

std::optional<Event> Conversation::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->queue_lock);
  if (!impl_->queue_changed.wait_for(lock, timeout, [this] { return !impl_->events.empty(); })) {
    return std::nullopt;
  }
  Event event = std::move(impl_->events.front());
  impl_->events.pop_front();
  return event;
}

}  // namespace npcvoice
