"""Conversions between the speech service's protos and its domain values."""

from __future__ import annotations

from collections.abc import AsyncIterator

from npcvoice.api.npc.speech.v1 import speech_pb2
from npcvoice.converters import input_format
from npcvoice.speech.engine import RecognitionRequest, Word
from npcvoice.speech.recognition import (
    EndpointingRequest,
    Recognition,
    RecognitionEvent,
    StreamConfig,
    UtteranceTranscript,
)
from npcvoice.speech.stream import SpeechStarted

_FINAL_REASONS = {
    None: speech_pb2.FINAL_REASON_UNSPECIFIED,
    "endpoint": speech_pb2.FINAL_REASON_ENDPOINT,
    "max_duration": speech_pb2.FINAL_REASON_MAX_DURATION,
    "end_of_stream": speech_pb2.FINAL_REASON_END_OF_STREAM,
}


def request_from_proto(config: speech_pb2.RecognitionConfig) -> RecognitionRequest:
    return RecognitionRequest(
        language=config.language,
        hotwords=tuple(h.strip() for h in config.hotwords if h.strip()),
        initial_prompt=config.initial_prompt,
        word_timings=config.word_timings,
    )


def endpointing_from_proto(endpointing: speech_pb2.Endpointing) -> EndpointingRequest:
    """Zero, the proto's unset value, keeps the service's option."""
    return EndpointingRequest(
        speech_threshold=endpointing.speech_threshold or None,
        min_silence_ms=endpointing.min_silence_ms or None,
        min_speech_ms=endpointing.min_speech_ms or None,
        speech_pad_ms=endpointing.speech_pad_ms or None,
    )


def stream_config_from_proto(config: speech_pb2.StreamingRecognitionConfig) -> StreamConfig:
    encoding, rate = input_format(config.recognition.audio_format, "config.recognition.audio_format")
    return StreamConfig(
        recognition=request_from_proto(config.recognition),
        encoding=encoding,
        sample_rate=rate,
        endpointing=endpointing_from_proto(config.endpointing),
        interim_results=config.interim_results,
        interim_interval_ms=config.interim_interval_ms or None,
    )


async def audio_from_proto(
    requests: AsyncIterator[speech_pb2.StreamingRecognizeRequest],
) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request.audio


def words_to_proto(words: list[Word]) -> list[speech_pb2.WordTiming]:
    return [
        speech_pb2.WordTiming(
            word=w.word, start_seconds=w.start_s, end_seconds=w.end_s, probability=w.probability
        )
        for w in words
    ]


def recognition_to_proto(recognition: Recognition) -> speech_pb2.RecognizeResponse:
    transcript = recognition.transcript
    return speech_pb2.RecognizeResponse(
        text=transcript.text,
        words=words_to_proto(transcript.words),
        language=transcript.language,
        audio_seconds=recognition.audio_s,
        processing_seconds=recognition.processing_s,
    )


def transcript_to_proto(transcript: UtteranceTranscript) -> speech_pb2.StreamingTranscript:
    return speech_pb2.StreamingTranscript(
        utterance_index=transcript.utterance_index,
        text=transcript.text,
        is_final=transcript.is_final,
        start_seconds=transcript.start_s,
        end_seconds=transcript.end_s,
        words=words_to_proto(transcript.words),
        final_reason=_FINAL_REASONS[transcript.reason],
        finalize_seconds=transcript.finalize_s,
        line_text=transcript.line_text,
        settled=transcript.settled,
    )


def event_to_proto(event: RecognitionEvent) -> speech_pb2.StreamingRecognizeResponse:
    if isinstance(event, UtteranceTranscript):
        return speech_pb2.StreamingRecognizeResponse(transcript=transcript_to_proto(event))
    activity = speech_pb2.SpeechActivity(
        type=speech_pb2.SPEECH_ACTIVITY_TYPE_STARTED
        if isinstance(event, SpeechStarted)
        else speech_pb2.SPEECH_ACTIVITY_TYPE_ENDED,
        utterance_index=event.utterance_index,
        stream_time_seconds=event.stream_time_s,
    )
    return speech_pb2.StreamingRecognizeResponse(activity=activity)
