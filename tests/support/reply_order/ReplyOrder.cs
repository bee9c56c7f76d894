// Feeds NpcVoice.Reply (clients/csharp) the event orders of tests/test_client_replies.py and prints what it
// gathered, one line per order: "<order>: turn=<n> interruption=<turn or none> ended=<0|1>". Compiled with
// the library's sources (its events' TurnIndex is set inside the assembly only).
using System;
using NpcVoice;

public static class ReplyOrder
{
    static Interruption Cut(int turn) { return new Interruption { TurnIndex = turn }; }
    static TurnEnd End(int turn, bool interrupted) { return new TurnEnd { TurnIndex = turn, Interrupted = interrupted }; }
    static ReplyText Text(int turn) { return new ReplyText { TurnIndex = turn, Delta = "Aye." }; }

    static void Run(string name, params ConversationEvent[] events)
    {
        var reply = new Reply();
        foreach (ConversationEvent evt in events) reply.Add(evt);
        string held = reply.Interruption != null ? reply.Interruption.TurnIndex.ToString() : "none";
        Console.WriteLine(name + ": turn=" + reply.TurnIndex + " interruption=" + held + " ended=" + (reply.End != null ? 1 : 0));
    }

    public static void Main()
    {
        Run("cut before any output", Cut(3), End(3, true));
        Run("the turn before talked over", Cut(2), Text(3), End(3, false));
        Run("cut while speaking", Text(3), Cut(3), End(3, true));
    }
}
