// Protocol Buffers' wire format, the little of it the conversation's messages use, so the client needs no
// protobuf library (Unity's .NET Standard 2.1 profile has none, and no NuGet is needed).
// https://protobuf.dev/programming-guides/encoding/
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace NpcVoice.Wire
{
    internal enum WireType
    {
        Varint = 0,
        Fixed64 = 1,
        Length = 2,
        Fixed32 = 5,
    }

    /// <summary>Writes one message; proto3 rules: a field left at its default is not written.</summary>
    internal sealed class Writer
    {
        private readonly MemoryStream buffer = new MemoryStream();

        public byte[] ToArray() => buffer.ToArray();

        public Writer Int(int field, long value)
        {
            if (value != 0) Varint(field, value);
            return this;
        }

        /// <summary>Written even when 0: a proto3 <c>optional</c> field that is set.</summary>
        public Writer Varint(int field, long value)
        {
            Tag(field, WireType.Varint);
            Raw(unchecked((ulong)value));  // a negative int32 or int64 takes ten bytes, as protobuf's own
            return this;
        }

        public Writer Bool(int field, bool value) => Int(field, value ? 1 : 0);

        public Writer String(int field, string value)
        {
            if (!string.IsNullOrEmpty(value)) Bytes(field, Encoding.UTF8.GetBytes(value));
            return this;
        }

        /// <summary>Always written: a oneof's bytes or string case is set even when empty.</summary>
        public Writer Bytes(int field, byte[] value)
        {
            Tag(field, WireType.Length);
            Raw((ulong)value.Length);
            buffer.Write(value, 0, value.Length);
            return this;
        }

        /// <summary>Always written: a proto3 <c>optional</c> string that is set, even to "".</summary>
        public Writer SetString(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value ?? ""));

        /// <summary>A <c>repeated string</c>.</summary>
        public Writer Strings(int field, IEnumerable<string> values)
        {
            if (values == null) return this;
            foreach (string value in values) SetString(field, value);
            return this;
        }

        /// <summary>Always written: a message field, or a oneof's message case, is set even when empty.</summary>
        public Writer Message(int field, Writer message) => Bytes(field, message.ToArray());

        /// <summary>A <c>map&lt;string, string&gt;</c>: one entry message (key 1, value 2) each.</summary>
        public Writer Map(int field, IDictionary<string, string> values)
        {
            if (values == null) return this;
            foreach (var pair in values)
                Message(field, new Writer().String(1, pair.Key).String(2, pair.Value ?? ""));
            return this;
        }

        private void Tag(int field, WireType type) => Raw((ulong)((field << 3) | (int)type));

        private void Raw(ulong value)
        {
            while (value >= 0x80)
            {
                buffer.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }
            buffer.WriteByte((byte)value);
        }
    }

    /// <summary>Reads one message's fields in order; fields it is not asked for are skipped, so a newer
    /// gateway's additions are ignored.</summary>
    internal sealed class Reader
    {
        private readonly byte[] data;
        private int position;
        private readonly int end;
        private WireType type;

        public Reader(byte[] data) : this(data, 0, data.Length) { }

        private Reader(byte[] data, int offset, int count)
        {
            this.data = data;
            position = offset;
            end = offset + count;
        }

        /// <summary>The next field's number, or 0 at the end of the message.</summary>
        public int Next()
        {
            if (position >= end) return 0;
            ulong tag = Raw();
            type = (WireType)(tag & 7);
            int field = (int)(tag >> 3);
            if (field <= 0) throw new InvalidDataException("a field number of 0");
            return field;
        }

        public long Long() => unchecked((long)Expect(WireType.Varint, Raw));

        public int Int() => unchecked((int)Long());

        public bool Bool() => Long() != 0;

        public double Double()
        {
            Expect(WireType.Fixed64, () => 0UL);
            double value = BitConverter.Int64BitsToDouble(unchecked((long)Fixed(8)));
            return value;
        }

        public float Float()
        {
            Expect(WireType.Fixed32, () => 0UL);
            return BitConverter.ToSingle(BitConverter.GetBytes(unchecked((uint)Fixed(4))), 0);
        }

        public byte[] Bytes()
        {
            int count = Length();
            var bytes = new byte[count];
            Buffer.BlockCopy(data, position, bytes, 0, count);
            position += count;
            return bytes;
        }

        public string String()
        {
            int count = Length();
            string text = Encoding.UTF8.GetString(data, position, count);
            position += count;
            return text;
        }

        public Reader Message()
        {
            int count = Length();
            var message = new Reader(data, position, count);
            position += count;
            return message;
        }

        /// <summary>One entry of a <c>map&lt;string, string&gt;</c> into <paramref name="into"/>.</summary>
        public void MapEntry(IDictionary<string, string> into)
        {
            Reader entry = Message();
            string key = "", value = "";
            for (int field; (field = entry.Next()) != 0;)
            {
                if (field == 1) key = entry.String();
                else if (field == 2) value = entry.String();
                else entry.Skip();
            }
            into[key] = value;
        }

        public void Skip()
        {
            switch (type)
            {
                case WireType.Varint: Raw(); break;
                case WireType.Fixed64: Fixed(8); break;
                case WireType.Fixed32: Fixed(4); break;
                case WireType.Length: position += Length(); break;
                default: throw new InvalidDataException("wire type " + (int)type + " is not used by npcvoice");
            }
            if (position > end) throw new InvalidDataException("a field runs past its message");
        }

        private int Length()
        {
            if (type != WireType.Length) throw new InvalidDataException("expected a length-delimited field");
            ulong count = Raw();
            if (count > (ulong)(end - position)) throw new InvalidDataException("a field runs past its message");
            return (int)count;
        }

        private ulong Expect(WireType expected, Func<ulong> read)
        {
            if (type != expected) throw new InvalidDataException("expected wire type " + (int)expected);
            return read();
        }

        private ulong Fixed(int bytes)
        {
            if (position + bytes > end) throw new InvalidDataException("a field runs past its message");
            ulong value = 0;
            for (int i = 0; i < bytes; i++) value |= (ulong)data[position + i] << (8 * i);  // little-endian
            position += bytes;
            return value;
        }

        private ulong Raw()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (position >= end) throw new InvalidDataException("a varint runs past its message");
                byte b = data[position++];
                value |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return value;
            }
            throw new InvalidDataException("a varint longer than ten bytes");
        }
    }
}
