//! Speech on the hub: what members say to the assistant is recognised on
//! the household's own machine, never in a vendor's cloud.
//!
//! - [`audio`]: the recordings apps send (WebM/Opus from a browser's
//!   MediaRecorder, Ogg, M4A/AAC from phones, WAV, MP3) decoded to 16 kHz
//!   mono, with limits and clear errors. Pure.
//! - [`webm`]: the WebM reader (live recordings of unknown size). Pure.
//! - [`whisper`]: the client of whisper.cpp's server, which runs a
//!   multilingual Whisper model (Korean and English among its languages).

pub mod audio;
pub mod webm;
pub mod whisper;
