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

// A synchronous ClientReaderWriter and two threads of its own, so the game's thread never waits on the
// network: the reading thread opens the stream (connecting may take a while), writes the config, then
// reads until the end; the writing thread it starts writes what the send_* calls queued, in order. gRPC
// allows one reader and one writer at a time on a stream, and Finish must not run beside a Write, so
// the reading thread stops and joins the writing one before it calls Finish.
struct Conversation::Impl {
  pb::ConverseRequest config;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::ConversationService::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::ConverseRequest, pb::ConverseResponse>> stream;

  std::mutex out_lock;
  std::condition_variable out_changed;
  std::deque<std::optional<pb::ConverseRequest>> outgoing;  // nothing = "no more input" (WritesDone)
  bool accepting = true;                                    // the send_* calls still take requests
  bool stop_writing = false;

  std::mutex in_lock;
  std::condition_variable in_changed;
  std::deque<Event> events;

  std::thread reader;

  bool enqueue(std::optional<pb::ConverseRequest> request) {
    {
      std::lock_guard<std::mutex> lock(out_lock);
      if (!accepting) return false;
      accepting = request.has_value();
      outgoing.push_back(std::move(request));
    }
    out_changed.notify_one();
    return true;
  }

  void stop_writer() {
    {
      std::lock_guard<std::mutex> lock(out_lock);
      accepting = false;
      stop_writing = true;
    }
    out_changed.notify_one();
  }

  void push(Event event) {
    {
      std::lock_guard<std::mutex> lock(in_lock);
      events.push_back(std::move(event));
    }
    in_changed.notify_all();
  }

  void write_all() noexcept {
    try {
      for (;;) {
        std::unique_lock<std::mutex> lock(out_lock);
        out_changed.wait(lock, [this] { return stop_writing || !outgoing.empty(); });
        if (stop_writing) return;  // the stream is over: what is still queued cannot go anywhere
        std::optional<pb::ConverseRequest> request = std::move(outgoing.front());
        outgoing.pop_front();
        lock.unlock();
        if (!request) {
          stream->WritesDone();
          return;
        }
        if (!stream->Write(*request)) {
          stop_writer();  // the stream is over; the Closed event says why
          return;
        }
      }
    } catch (...) {
      stop_writer();  // the reading thread's Closed event reports the stream's end
    }
  }

  // Threads must not outlive what they use, nor let an exception escape (that ends the game): a
  // failure becomes the Closed event like any other end of the stream.
  void read_all() noexcept {
    try {
      stream = stub->Converse(&context);
      stream->Write(config);  // first, before anything the game queued meanwhile
      {
        Writer writer(*this);
        pb::ConverseResponse response;
        while (stream->Read(&response)) {
          if (auto event = convert::event(response)) push(std::move(*event));
        }
      }
      const grpc::Status status = stream->Finish();
      push(Closed{static_cast<int>(status.error_code()), status.error_message()});
    } catch (const std::exception& error) {
      stop_writer();
      push(Closed{static_cast<int>(grpc::StatusCode::INTERNAL), error.what()});
    } catch (...) {
      stop_writer();
      push(Closed{static_cast<int>(grpc::StatusCode::INTERNAL), "unknown error in the conversation"});
    }
  }

  // The writing thread, stopped and joined when the reading ends (also when something throws).
  class Writer {
   public:
    explicit Writer(Impl& impl) : impl_(impl), thread_([&impl] { impl.write_all(); }) {}
    ~Writer() {
      impl_.stop_writer();
      thread_.join();
    }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

   private:
    Impl& impl_;
    std::thread thread_;
  };
};

Conversation::Conversation(const ConversationOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->config = convert::config(options);
  impl_->channel = grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials());
  impl_->stub = pb::ConversationService::NewStub(impl_->channel);
  if (!options.api_key.empty()) impl_->context.AddMetadata("authorization", "Bearer " + options.api_key);
  impl_->reader = std::thread([impl = impl_.get()] { impl->read_all(); });
}

Conversation::~Conversation() {
  // The threads end when the stream does; cancelling ends it now (a call not yet started is cancelled
  // as it starts).
  impl_->context.TryCancel();
  if (impl_->reader.joinable()) impl_->reader.join();
}

bool Conversation::send_text(const std::string& line) { return impl_->enqueue(convert::text(line)); }

bool Conversation::send_audio(const std::int16_t* samples, std::size_t count) {
  return impl_->enqueue(convert::audio(samples, count));
}

bool Conversation::end_of_speech() { return impl_->enqueue(convert::end_of_speech()); }

bool Conversation::send_playback(int turn_index, std::int64_t played_samples) {
  return impl_->enqueue(convert::playback(turn_index, played_samples));
}

bool Conversation::send_context(const std::map<std::string, std::string>& values) {
  return impl_->enqueue(convert::context(values));
}

bool Conversation::send_event(const std::string& name, const std::string& description,
                              const std::map<std::string, std::string>& parameters, const std::string& npc_id) {
  return impl_->enqueue(convert::event(name, description, parameters, npc_id));
}

bool Conversation::ask_to_speak(const std::string& instruction, const std::string& npc_id,
                                const std::string& to_npc_id, int lines) {
  return impl_->enqueue(convert::speak(instruction, npc_id, to_npc_id, lines));
}

bool Conversation::address(const std::string& npc_id) {
  pb::ConverseRequest request;
  request.mutable_scene()->set_addressed_npc_id(npc_id);
  return impl_->enqueue(std::move(request));
}

bool Conversation::set_out_of_earshot(const std::vector<std::string>& npc_ids) {
  pb::ConverseRequest request;
  auto* out = request.mutable_scene()->mutable_earshot()->mutable_out_of_earshot_npc_ids();
  out->Add(npc_ids.begin(), npc_ids.end());
  return impl_->enqueue(std::move(request));
}

bool Conversation::join(const std::vector<std::string>& npc_ids) {
  pb::ConverseRequest request;
  request.mutable_scene()->mutable_join_npc_ids()->Add(npc_ids.begin(), npc_ids.end());
  return impl_->enqueue(std::move(request));
}

bool Conversation::leave(const std::vector<std::string>& npc_ids) {
  pb::ConverseRequest request;
  request.mutable_scene()->mutable_leave_npc_ids()->Add(npc_ids.begin(), npc_ids.end());
  return impl_->enqueue(std::move(request));
}

void Conversation::finish_input() { impl_->enqueue(std::nullopt); }

void Conversation::cancel() { impl_->context.TryCancel(); }

std::optional<Event> Conversation::poll() { return wait(std::chrono::milliseconds(0)); }

std::optional<Event> Conversation::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->in_lock);
  if (!impl_->in_changed.wait_for(lock, timeout, [this] { return !impl_->events.empty(); })) {
    return std::nullopt;
  }
  Event event = std::move(impl_->events.front());
  impl_->events.pop_front();
  return event;
}

}  // namespace npcvoice
