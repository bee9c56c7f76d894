"""The voice service, as a client hears it: real piper voice, real gRPC."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.voice.v1 import voice_pb2, voice_pb2_grpc
from npcvoice.text import SentenceBuffer, clean_for_speech
from npcvoice.voice.engine import SynthesisSettings, VoiceEngine
from npcvoice.voice.options import VoiceOptions
from tests.support.grpc_status import status_of
from tests.support.waiting import eventually

FIRST_CLAUSE = voice_pb2.SPLIT_MODE_FIRST_CLAUSE


def stub(service) -> voice_pb2_grpc.VoiceServiceStub:
    return voice_pb2_grpc.VoiceServiceStub(service.channel)


def config(**voice: object) -> voice_pb2.SynthesisConfig:
    return voice_pb2.SynthesisConfig(voice=voice_pb2.VoiceSettings(**voice))  # type: ignore[arg-type]


async def synthesize(
    service, text: str, cfg: voice_pb2.SynthesisConfig | None = None
) -> list[voice_pb2.AudioChunk]:
    request = voice_pb2.SynthesizeRequest(text=text, config=cfg or config())
    return [r.chunk async for r in stub(service).Synthesize(request)]


def assert_tiles(chunks: list[voice_pb2.AudioChunk], bytes_per_sample: int = 2) -> None:
    position = 0
    for chunk in chunks:
        assert chunk.start_sample == position
        assert len(chunk.audio) == chunk.num_samples * bytes_per_sample
        assert sum(p.num_samples for p in chunk.phonemes) == chunk.num_samples
        phoneme_position = chunk.start_sample
        for phoneme in chunk.phonemes:
            assert phoneme.start_sample == phoneme_position
            phoneme_position += phoneme.num_samples
        position += chunk.num_samples


async def test_each_sentence_arrives_as_a_chunk_whose_phonemes_sum_exactly_to_its_audio(voice_service):
    chunks = await synthesize(voice_service, "Bob met Pam by the map. The gate closes at dusk!")
    assert [c.text for c in chunks] == ["Bob met Pam by the map.", "The gate closes at dusk!"]
    assert [c.sentence_index for c in chunks] == [0, 1]
    assert chunks[0].format.sample_rate_hz == 22050
    assert chunks[0].format.encoding == audio_pb2.AUDIO_ENCODING_PCM16
    assert_tiles(chunks)
    symbols = [p.phoneme for p in chunks[0].phonemes]
    assert symbols[0] == "^" and symbols[-1] == "$" and "b" in symbols and "m" in symbols


async def test_resampled_float32_output_keeps_exact_phoneme_timings(voice_service):
    cfg = config()
    cfg.output_format.CopyFrom(
        audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_FLOAT32, sample_rate_hz=16000)
    )
    chunks = await synthesize(voice_service, "Hello there, traveller. Welcome to Emberfall.", cfg)
    assert {c.format.sample_rate_hz for c in chunks} == {16000}
    assert_tiles(chunks, bytes_per_sample=4)
    duration = sum(c.num_samples for c in chunks) / 16000
    assert 1.5 < duration < 6.0


async def test_first_clause_split_speaks_the_opening_clause_on_its_own(voice_service):
    text = "Well then, my good friend, the gate closes at dusk. Hurry along."
    split = voice_pb2.SynthesisConfig(split_mode=FIRST_CLAUSE)
    assert [c.text for c in await synthesize(voice_service, text, split)] == [
        "Well then, my good friend,", "the gate closes at dusk.", "Hurry along.",
    ]  # fmt: skip
    assert [c.text for c in await synthesize(voice_service, text)] == [
        "Well then, my good friend, the gate closes at dusk.", "Hurry along.",
    ]  # fmt: skip


async def test_speed_changes_how_long_the_line_takes(voice_service):
    text = "The smugglers move silver through the Thornwood at night."
    slow = sum(c.num_samples for c in await synthesize(voice_service, text, config(speed=0.7)))
    fast = sum(c.num_samples for c in await synthesize(voice_service, text, config(speed=1.5)))
    assert fast < slow * 0.7


async def test_a_stream_of_fragments_gets_audio_before_the_input_ends(voice_service):
    received: asyncio.Queue[voice_pb2.AudioChunk] = asyncio.Queue()
    first_arrived = asyncio.Event()

    async def requests():
        yield voice_pb2.SynthesizeStreamRequest(config=voice_pb2.SynthesisConfig())
        for token in ["Halt", ",", " travel", "ler", ".", " State", " your"]:
            yield voice_pb2.SynthesizeStreamRequest(fragment=voice_pb2.TextFragment(text=token))
        # The first sentence is complete; its audio must come before we say any more.
        await asyncio.wait_for(first_arrived.wait(), timeout=20)
        for token in [" business", " in", " Vaelmoor"]:
            yield voice_pb2.SynthesizeStreamRequest(fragment=voice_pb2.TextFragment(text=token))

    async for response in stub(voice_service).SynthesizeStream(requests()):
        await received.put(response.chunk)
        first_arrived.set()
    chunks = [received.get_nowait() for _ in range(received.qsize())]
    assert [c.text for c in chunks] == ["Halt, traveller.", "State your business in Vaelmoor"]
    assert_tiles(chunks)


async def test_text_is_cleaned_before_it_is_spoken(voice_service):
    [chunk] = await synthesize(voice_service, "Hello 👋 *there*, Dr. Smith\x07!")
    assert chunk.text == "Hello there, Doctor Smith!"


def test_text_hygiene_reads_symbols_abbreviations_and_money_as_words():
    assert clean_for_speech("It costs $5, e.g. 10% off… Mr. Vael & co.") == (
        "It costs 5 dollars, for example, 10 percent off, Mister Vael and co."
    )
    assert clean_for_speech("🎉🎉 \x00") == ""
    buffer = SentenceBuffer()
    assert buffer.add("Ask Dr.") == []  # an abbreviation is not a sentence end
    assert buffer.add(" Hilda. She") == ["Ask Doctor Hilda."]
    assert buffer.flush() == ["She"]


async def test_list_voices_names_the_bundled_voice(voice_service):
    voices = await stub(voice_service).ListVoices(voice_pb2.ListVoicesRequest())
    assert voices.default_voice_id == "en_US-joe-medium"
    [joe] = [v for v in voices.voices if v.voice_id == "en_US-joe-medium"]
    assert joe.native_sample_rate_hz == 22050 and joe.num_speakers == 1


def log_spectrum(pcm: bytes, rate: int) -> np.ndarray:
    """The speech's average log spectrum on a log-frequency grid (tenths of a semitone, 80 Hz to 5 kHz)."""
    samples = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768
    size, window = 2048, np.hanning(2048)
    frames = [samples[i : i + size] * window for i in range(0, len(samples) - size, size // 4)]
    magnitude = np.mean([np.abs(np.fft.rfft(frame)) for frame in frames], axis=0)
    grid = 80 * 2 ** (np.arange(0, int(120 * np.log2(5000 / 80))) / 120)
    return np.log(np.interp(grid, np.fft.rfftfreq(size, 1 / rate), magnitude) + 1e-6)


def semitones_between(low: np.ndarray, high: np.ndarray) -> float:
    """How many semitones ``high``'s spectrum sits above ``low``'s: the shift that lines them up best."""
    shifts = range(-80, 81)  # tenths of a semitone
    scores = [np.corrcoef(low[max(0, -k) : len(low) - max(0, k)], high[max(0, k) : len(high) - max(0, -k)])[0, 1]
              for k in shifts]  # fmt: skip
    return shifts[int(np.argmax(scores))] / 10


async def test_pitch_moves_the_voice_up_or_down_and_keeps_its_speaking_rate(voice_service):
    text = "The smugglers move silver through the Thornwood at night."
    heard = {}
    for semitones in (-4.0, 0.0, 4.0):
        chunks = await synthesize(voice_service, text, config(pitch_semitones=semitones, variation=0.0))
        assert_tiles(chunks)  # the phoneme timings still add up to the audio, for the lips
        audio = b"".join(c.audio for c in chunks)
        heard[semitones] = (len(audio) / 2 / 22050, log_spectrum(audio, 22050))
    (low_s, low), (s, same), (high_s, high) = heard[-4.0], heard[0.0], heard[4.0]
    assert semitones_between(same, high) == pytest.approx(4, abs=0.5)
    assert semitones_between(low, same) == pytest.approx(4, abs=0.5)
    assert low_s == pytest.approx(s, rel=0.1) and high_s == pytest.approx(s, rel=0.1)  # the same rate


@pytest.mark.parametrize(
    ("text", "cfg", "code", "message"),
    [
        ("", None, grpc.StatusCode.INVALID_ARGUMENT, "text: has nothing to speak"),
        ("🎉 🎉", None, grpc.StatusCode.INVALID_ARGUMENT, "text: has nothing to speak"),
        ("a" * 2001, None, grpc.StatusCode.INVALID_ARGUMENT, "text: must be at most 2000 characters, got 2001"),
        ("Hi.", config(voice_id="en_GB-nobody"), grpc.StatusCode.NOT_FOUND, "voice 'en_GB-nobody' not found"),
        ("Hi.", config(speed=5.0), grpc.StatusCode.INVALID_ARGUMENT, "voice.speed: must be between 0.5 and 2.0"),
        ("Hi.", config(volume=-1.0), grpc.StatusCode.INVALID_ARGUMENT, "voice.volume: must be between"),
        ("Hi.", config(speaker_id=3), grpc.StatusCode.INVALID_ARGUMENT, "voice.speaker_id: must be between 0 and 0"),
        ("Hi.", config(pitch_semitones=7), grpc.StatusCode.INVALID_ARGUMENT, "voice.pitch_semitones: must be between -6"),
        ("Hi.", voice_pb2.SynthesisConfig(output_format=audio_pb2.AudioFormat(sample_rate_hz=100)),
         grpc.StatusCode.INVALID_ARGUMENT, "output_format.sample_rate_hz: must be between 8000 and 48000 Hz"),
        ("Hi.", voice_pb2.SynthesisConfig(output_format=audio_pb2.AudioFormat(encoding=7)),  # type: ignore[arg-type]
         grpc.StatusCode.INVALID_ARGUMENT, "config.output_format.encoding: unsupported encoding 7"),
    ],
)  # fmt: skip
async def test_bad_requests_get_a_clear_status(voice_service, text, cfg, code, message):
    request = voice_pb2.SynthesizeRequest(text=text, config=cfg or config())
    got_code, details = await status_of(stub(voice_service).Synthesize(request))
    assert got_code == code
    assert details.startswith(message), details


async def test_a_stream_must_open_with_exactly_one_config(voice_service):
    fragment = voice_pb2.SynthesizeStreamRequest(fragment=voice_pb2.TextFragment(text="Hi."))
    code, details = await status_of(stub(voice_service).SynthesizeStream(iter([fragment])))
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "config: the first message of the stream must be a config",
    )
    cfg = voice_pb2.SynthesizeStreamRequest(config=voice_pb2.SynthesisConfig())
    code, details = await status_of(stub(voice_service).SynthesizeStream(iter([cfg, cfg])))
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "config: only the first message of the stream may be a config",
    )


async def test_cancelling_stops_synthesis(voice_service):
    def spoken() -> float:
        return (
            REGISTRY.get_sample_value("npcvoice_voice_pieces_total", {"voice_id": "en_US-joe-medium"}) or 0.0
        )

    text = " ".join(f"This is sentence number {n} of a very long speech." for n in range(1, 21))
    call = stub(voice_service).Synthesize(voice_pb2.SynthesizeRequest(text=text))
    async for _ in call:
        break
    before = spoken()
    call.cancel()
    await eventually(lambda: voice_service.host.interceptor.in_flight == 0, 5)  # the call was let go
    assert spoken() - before <= 1  # at most the sentence already in the synthesizer finishes


def test_a_cpu_voice_plans_no_memory_per_sentence_length_and_still_times_its_phonemes():
    # onnxruntime's memory pattern (piper's default) caches an allocation plan for every input length
    # seen, and the arena grows with each; off, the process's memory stays flat over a long run
    engine = VoiceEngine(VoiceOptions(device="cpu"))
    voice = engine.load(engine.default_voice)
    assert voice.session.get_session_options().enable_mem_pattern is False  # type: ignore[attr-defined]
    chunk = engine.synthesize_piece("A short line.", engine.check(SynthesisSettings()), 0, 0)
    assert chunk.phonemes and sum(p.num_samples for p in chunk.phonemes) == chunk.num_samples


@pytest.mark.parametrize("threads,spinning", [(0, False), (1, True)])
def test_a_cpu_voice_takes_the_threads_and_spinning_it_is_given(threads, spinning):
    # By default onnxruntime's threads do not spin-wait after each sentence (the CPU they would burn is
    # the dialogue's and speech's on a small machine); an operator may give it threads and spinning back.
    engine = VoiceEngine(VoiceOptions(device="cpu", threads=threads, spinning=spinning))
    voice = engine.load(engine.default_voice)
    options = voice.session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == threads
    try:  # onnxruntime spins unless told not to
        allowed = options.get_session_config_entry("session.intra_op.allow_spinning")
    except Exception:  # (a plain Exception for a key never set)
        allowed = "1"
    assert allowed == ("1" if spinning else "0")
    assert VoiceOptions().spinning is False
    chunk = engine.synthesize_piece("A short line.", engine.check(SynthesisSettings()), 0, 0)
    assert chunk.num_samples > 0
