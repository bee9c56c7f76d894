// Signatures only: the members of UnityEngine that clients/csharp/Samples~/UnityNpc uses, as Unity
// declares them, so scripts/build-csharp-client.sh can check that the sample compiles against the C#
// client without Unity installed. Nothing here runs; the sample's behaviour is the library's, which
// tests/test_clients.py runs against the real suite.
using System;

namespace UnityEngine
{
    public class Object { }
    public class Component : Object { public T GetComponent<T>() { throw new NotImplementedException(); } }
    public class Behaviour : Component { }
    public class MonoBehaviour : Behaviour { }
    public sealed class Mesh : Object { public int GetBlendShapeIndex(string blendShapeName) { throw new NotImplementedException(); } }
    public class Renderer : Component { }
    public class SkinnedMeshRenderer : Renderer
    {
        public Mesh sharedMesh { get; set; }
        public void SetBlendShapeWeight(int index, float value) { }
    }
    public sealed class AudioClip : Object
    {
        public delegate void PCMReaderCallback(float[] data);
        public int samples { get { throw new NotImplementedException(); } }
        public bool GetData(float[] data, int offsetSamples) { throw new NotImplementedException(); }
        public static AudioClip Create(string name, int lengthSamples, int channels, int frequency, bool stream, PCMReaderCallback pcmreadercallback) { throw new NotImplementedException(); }
    }
    public sealed class AudioSource : Behaviour
    {
        public AudioClip clip { get; set; }
        public bool loop { get; set; }
        public void Play() { }
    }
    public sealed class Microphone
    {
        public static AudioClip Start(string deviceName, bool loop, int lengthSec, int frequency) { throw new NotImplementedException(); }
        public static void End(string deviceName) { }
        public static int GetPosition(string deviceName) { throw new NotImplementedException(); }
    }
    public sealed class Time { public static float time { get { throw new NotImplementedException(); } } }
    public sealed class Debug
    {
        public static void Log(object message) { }
        public static void LogWarning(object message) { }
    }
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
    public sealed class RequireComponentAttribute : Attribute { public RequireComponentAttribute(Type requiredComponent) { } }
    [AttributeUsage(AttributeTargets.Field)]
    public class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }
}
