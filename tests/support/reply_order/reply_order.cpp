// Feeds npcvoice::Reply (clients/cpp) the event orders of tests/test_client_replies.py and prints what it
// gathered, one line per order: "<order>: turn=<n> interruption=<turn or none> ended=<0|1>".
#include <cstdio>
#include <string>
#include <vector>

#include "npcvoice/reply.h"

using namespace npcvoice;

namespace {

Interruption cut(int turn) {
  Interruption event;
  event.turn_index = turn;
  return event;
}

TurnEnd end(int turn, bool interrupted) {
  TurnEnd event;
  event.turn_index = turn;
  event.interrupted = interrupted;
  return event;
}

ReplyText text(int turn) {
  ReplyText event;
  event.turn_index = turn;
  event.delta = "Aye.";
  return event;
}

void run(const char* name, const std::vector<Event>& events) {
  Reply reply;
  for (const Event& event : events) reply.add(event);
  std::string held = reply.interruption ? std::to_string(reply.interruption->turn_index) : "none";
  std::printf("%s: turn=%d interruption=%s ended=%d\n", name, reply.turn_index, held.c_str(),
              reply.end.has_value() ? 1 : 0);
}

}  // namespace

int main() {
  run("cut before any output", {cut(3), end(3, true)});
  run("the turn before talked over", {cut(2), text(3), end(3, false)});
  run("cut while speaking", {text(3), cut(3), end(3, true)});
  return 0;
}
