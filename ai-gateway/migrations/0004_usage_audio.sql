-- Speech transcribed, in milliseconds of audio, beside the tokens: what the
-- policy's dailyAudioSeconds is checked against. Never any of the audio.
ALTER TABLE usage ADD COLUMN audio_ms INTEGER NOT NULL DEFAULT 0;
