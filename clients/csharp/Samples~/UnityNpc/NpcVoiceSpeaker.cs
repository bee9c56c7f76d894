// NpcVoiceSpeaker: an NPC that listens and talks in a Unity scene, with the npcvoice C# client.
//
// Put it on the NPC's GameObject (it adds an AudioSource), set the edge's URL and the NPC's id, and drag
// the face's SkinnedMeshRenderer into Face (its ARKit-named blendshapes, jawOpen, mouthClose, ..., move;
// shapes it lacks are left alone). Then, from the game: Say("Can you repair my sword?"), or
// StartTalking()/StopTalking() around push-to-talk. Events arrive on the main thread (DispatchTo), the
// reply plays through a streamed AudioClip that pulls from a ReplyPlayer, and the playback position goes
// back to the suite ten times a second, so a barge-in remembers exactly what the player heard.
using System.Threading;
using NpcVoice;
using UnityEngine;

[RequireComponent(typeof(AudioSource))]
public sealed class NpcVoiceSpeaker : MonoBehaviour
{
    public string url = "ws://127.0.0.1:8050/v1/converse";
    public string apiKey = "";
    public string npcId = "blacksmith_hilda";
    public string playerId = "player-1";
    public string playerName = "";
    [Tooltip("The reply audio's rate, asked of the suite; the streamed clip plays at it.")]
    public int replySampleRate = 24000;
    [Tooltip("The microphone's capture rate.")]
    public int microphoneSampleRate = 16000;
    public SkinnedMeshRenderer face;

    private const float ReportEvery = 0.1f;
    private readonly ReplyPlayer player = new ReplyPlayer();
    private Conversation conversation;
    private int[] arkitShapes = new int[0];
    private float nextReport;
    private AudioClip microphone;
    private int microphoneAt;

    /// <summary>The reply so far, for a subtitle.</summary>
    public string Subtitle { get; private set; } = "";

    private void Start()
    {
        var source = GetComponent<AudioSource>();
        // A streamed clip: Unity pulls the reply from the ReplyPlayer as it plays (silence between replies).
        source.clip = AudioClip.Create("npc-reply", replySampleRate * 60, 1, replySampleRate, true,
                                       data => player.Read(data, 0, data.Length));
        source.loop = true;
        source.Play();
        conversation = new Conversation(new ConversationOptions
        {
            Url = url, ApiKey = apiKey, NpcId = npcId, PlayerId = playerId, PlayerName = playerName,
            OutputSampleRate = replySampleRate, InputSampleRate = microphoneSampleRate,
        });
        conversation.DispatchTo(SynchronizationContext.Current, OnEvent);  // Start runs on the main thread
        if (face != null)
        {
            arkitShapes = new int[VisemeFrame.ArkitNames.Length];
            for (int i = 0; i < arkitShapes.Length; i++)
                arkitShapes[i] = face.sharedMesh.GetBlendShapeIndex(VisemeFrame.ArkitNames[i]);
        }
    }

    public void Say(string line) => conversation.SendText(line);

    public void StartTalking()
    {
        microphone = Microphone.Start(null, true, 10, microphoneSampleRate);
        microphoneAt = 0;
    }

    public void StopTalking()
    {
        if (microphone == null) return;
        SendMicrophone();
        Microphone.End(null);
        microphone = null;
        conversation.EndOfSpeech();
    }

    /// <summary>Tell the NPC something happened: its persona's trigger for the event may make it speak.</summary>
    public void Happened(string eventName, string description) => conversation.SendEvent(eventName, description);

    private void Update()
    {
        if (microphone != null) SendMicrophone();
        if (Time.time >= nextReport && player.TurnIndex >= 0)
        {
            conversation.SendPlayback(player.TurnIndex, player.PlayedSamples);
            nextReport = Time.time + ReportEvery;
        }
        VisemeFrame frame = player.CurrentFrame();
        if (frame == null) return;
        for (int i = 0; i < arkitShapes.Length; i++)
            if (arkitShapes[i] >= 0) face.SetBlendShapeWeight(arkitShapes[i], frame.Arkit[i] * 100f);
    }

    /// <summary>What the microphone captured since the last call (its clip is a 10 s ring).</summary>
    private void SendMicrophone()
    {
        int position = Microphone.GetPosition(null);
        int count = (position - microphoneAt + microphone.samples) % microphone.samples;
        if (count == 0) return;
        var samples = new float[count];
        microphone.GetData(samples, microphoneAt);  // wraps around the ring's end
        conversation.SendAudio(samples, 0, count);
        microphoneAt = position;
    }

    private void OnEvent(ConversationEvent evt)
    {
        player.Add(evt);
        if (evt is ReplyText text) Subtitle += text.Delta;
        else if (evt is TurnEnd) Subtitle = "";
        else if (evt is NpcAction action) Debug.Log(npcId + " does " + action.Name);
        else if (evt is TurnRefused refused) Debug.Log(npcId + " is busy: say it again in " + refused.RetryAfterSeconds + " s");
        else if (evt is Closed closed && !closed.Ok) Debug.LogWarning(npcId + ": " + closed.Message);
    }

    private void OnDestroy()
    {
        if (conversation != null) conversation.Dispose();
    }
}
