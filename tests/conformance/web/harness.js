// Page half of tests/conformance/harness.py: drives the official SDK (global TelnyxWebRTC)
// and reports everything it sees through emit(). Loaded before bundle.js so that the
// WebSocket wrapper below is in place when the SDK opens its socket.
(function () {
  'use strict';

  const events = [];
  const calls = new Map();
  const sockets = [];
  const audioSinks = new Map();
  let client = null;
  let audioCtx = null;

  // JSON-safe copy: drops functions, breaks cycles, summarises calls and DOM/media objects.
  function safe(value, depth) {
    depth = depth || 0;
    if (value === null || value === undefined) return null;
    const t = typeof value;
    if (t === 'string' || t === 'number' || t === 'boolean') return value;
    if (t === 'function' || t === 'symbol' || t === 'bigint') return undefined;
    if (value instanceof Error) return { name: value.name, message: value.message, code: value.code };
    if (depth > 4) return undefined;
    if ('peer' in value && 'state' in value && 'id' in value && 'direction' in value) return callInfo(value);
    if (Array.isArray(value)) return value.map((v) => safe(v, depth + 1)).filter((v) => v !== undefined);
    if (value.constructor && !['Object', undefined].includes(value.constructor.name)) {
      if (value instanceof EventTarget || value instanceof MediaStream) return undefined;
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (k.startsWith('_')) continue;
      const s = safe(v, depth + 1);
      if (s !== undefined) out[k] = s;
    }
    return out;
  }

  function emit(name, data) {
    const ev = { name: name, t: performance.now() / 1000, data: data === undefined ? null : data };
    events.push(ev);
    if (typeof window.harnessEmit === 'function') {
      try { window.harnessEmit(ev); } catch (e) { /* the Python side is gone: keep recording */ }
    }
  }

  // Track every socket the SDK opens: frames in both directions become ws.send / ws.recv
  // events, and closeSocket() can drop the current one.
  const NativeWebSocket = window.WebSocket;
  class TrackedWebSocket extends NativeWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      const u = String(url);
      sockets.push(this);
      emit('ws.create', { url: u });
      this.addEventListener('open', () => emit('ws.open', { url: u }));
      this.addEventListener('close', (e) => emit('ws.close', { url: u, code: e.code, reason: e.reason, wasClean: e.wasClean }));
      this.addEventListener('message', (e) => emit('ws.recv', parseFrame(e.data)));
    }
    send(data) {
      emit('ws.send', parseFrame(data));
      return super.send(data);
    }
  }
  function parseFrame(text) {
    try { return JSON.parse(text); } catch (e) { return { raw: String(text) }; }
  }
  window.WebSocket = TrackedWebSocket;

  function pcOf(call) {
    return (call && call.peer && call.peer.instance) || null;
  }

  function callInfo(call) {
    if (!call) return null;
    const pc = pcOf(call);
    const o = call.options || {};
    return {
      id: call.id,
      state: call.state,
      prevState: call.prevState,
      direction: call.direction,
      cause: call.cause === undefined ? null : call.cause,
      causeCode: call.causeCode === undefined ? null : call.causeCode,
      sipCode: call.sipCode === undefined ? null : call.sipCode,
      sipReason: call.sipReason === undefined ? null : call.sipReason,
      destinationNumber: o.destinationNumber === undefined ? null : o.destinationNumber,
      remoteCallerName: o.remoteCallerName === undefined ? null : o.remoteCallerName,
      remoteCallerNumber: o.remoteCallerNumber === undefined ? null : o.remoteCallerNumber,
      pc: pc ? {
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        signalingState: pc.signalingState,
        iceGatheringState: pc.iceGatheringState,
      } : null,
    };
  }

  function getCall(id) {
    let call = calls.get(id);
    if (!call && client && client.calls) call = client.calls[id];
    if (!call) throw new Error('unknown call id ' + id);
    return call;
  }

  function onNotification(n) {
    const data = { type: n.type };
    if (n.call) {
      calls.set(n.call.id, n.call);
      Object.assign(data, callInfo(n.call));
    }
    for (const [k, v] of Object.entries(n)) {
      if (k === 'call' || k === 'type' || k in data) continue;
      const s = safe(v);
      if (s !== undefined) data[k] = s;
    }
    emit('telnyx.notification', data);
  }

  function remoteAudioStream(call) {
    const pc = pcOf(call);
    const fromPc = pc ? pc.getReceivers().map((r) => r.track).filter((t) => t && t.kind === 'audio') : [];
    if (fromPc.length) return new MediaStream(fromPc);
    const rs = call.remoteStream;
    if (rs && rs.getAudioTracks().length) return rs;
    throw new Error('call ' + call.id + ' has no remote audio track');
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  window.H = {
    events: events,
    loaded() {
      emit('page.loaded', { sdk: typeof window.TelnyxWebRTC !== 'undefined' });
    },

    connect(opts) {
      if (client) throw new Error('already connected; call disconnect() first');
      const o = Object.assign({ iceServers: [], enableCallReports: false }, opts);
      client = new window.TelnyxWebRTC.TelnyxRTC(o);
      for (const name of ['telnyx.ready', 'telnyx.error', 'telnyx.warning', 'telnyx.socket.open',
                          'telnyx.socket.close', 'telnyx.socket.error']) {
        client.on(name, (x) => emit(name, safe(x) === undefined ? null : safe(x)));
      }
      client.on('telnyx.notification', onNotification);
      client.connect();
      return true;
    },

    async disconnect() {
      if (!client) return false;
      const c = client;
      client = null;
      await c.disconnect();
      emit('page.disconnected', null);
      return true;
    },

    newCall(opts) {
      const o = Object.assign({ audio: true, video: false }, opts);
      const call = client.newCall(o);
      calls.set(call.id, call);
      emit('page.newCall', { id: call.id });
      return call.id;
    },

    async answer(id, params) { await getCall(id).answer(params || {}); return callInfo(getCall(id)); },
    async hangup(id) { await getCall(id).hangup(); return callInfo(getCall(id)); },
    dtmf(id, digits) { getCall(id).dtmf(digits); return true; },
    async hold(id) { return safe(await getCall(id).hold()) || null; },
    async unhold(id) { return safe(await getCall(id).unhold()) || null; },
    mute(id) { getCall(id).muteAudio(); return true; },
    unmute(id) { getCall(id).unmuteAudio(); return true; },
    callInfo(id) { return callInfo(getCall(id)); },
    calls() { return Array.from(calls.values()).map(callInfo); },

    // Peak of the averaged FFT of the call's remote audio over `seconds`.
    async dominantFrequency(id, seconds, minHz) {
      const call = getCall(id);
      const stream = remoteAudioStream(call);
      // Chromium only feeds a remote WebRTC track into WebAudio while some media element
      // plays it; a muted <audio> is enough.
      // A call that was recovered (reattach after a reconnect) has a new peer connection and
      // new remote tracks under the same id: play those, not the dead ones.
      const prev = audioSinks.get(id);
      const playing = prev && prev.srcObject ? prev.srcObject.getAudioTracks() : [];
      if (prev && !stream.getAudioTracks().every((t) => playing.includes(t))) {
        prev.pause();
        prev.srcObject = null;
        audioSinks.delete(id);
      }
      if (!audioSinks.has(id)) {
        const el = new Audio();
        el.muted = true;
        el.srcObject = stream;
        await el.play().catch(() => {});
        audioSinks.set(id, el);
      }
      if (!audioCtx) audioCtx = new AudioContext({ sampleRate: 48000 });
      await audioCtx.resume();
      const src = audioCtx.createMediaStreamSource(stream);
      const an = audioCtx.createAnalyser();
      an.fftSize = 8192;
      an.smoothingTimeConstant = 0;
      const mute = audioCtx.createGain();
      mute.gain.value = 0;
      src.connect(an);
      an.connect(mute);
      mute.connect(audioCtx.destination);
      const spec = new Float32Array(an.frequencyBinCount);
      const acc = new Float64Array(an.frequencyBinCount);
      const td = new Float32Array(an.fftSize);
      let frames = 0, sumSq = 0, count = 0;
      const end = performance.now() + seconds * 1000;
      try {
        while (performance.now() < end) {
          await sleep(60);
          an.getFloatFrequencyData(spec);
          for (let i = 0; i < spec.length; i++) {
            if (Number.isFinite(spec[i])) acc[i] += Math.pow(10, spec[i] / 10);
          }
          an.getFloatTimeDomainData(td);
          for (let i = 0; i < td.length; i++) sumSq += td[i] * td[i];
          count += td.length;
          frames++;
        }
      } finally {
        src.disconnect();
        an.disconnect();
        mute.disconnect();
      }
      const binHz = audioCtx.sampleRate / an.fftSize;
      const first = Math.max(1, Math.ceil((minHz || 50) / binHz));
      let k = first;
      for (let i = first; i < acc.length; i++) if (acc[i] > acc[k]) k = i;
      let delta = 0;
      if (k > first && k < acc.length - 1 && acc[k] > 0) {
        const a = Math.log(acc[k - 1] || 1e-30), b = Math.log(acc[k]), c = Math.log(acc[k + 1] || 1e-30);
        const den = a - 2 * b + c;
        if (den !== 0) delta = 0.5 * (a - c) / den;
      }
      const meanPeak = frames ? acc[k] / frames : 0;
      const rms = count ? Math.sqrt(sumSq / count) : 0;
      return {
        freq: (k + delta) * binHz,
        levelDb: meanPeak > 0 ? 10 * Math.log10(meanPeak) : -Infinity,
        rmsDbfs: rms > 0 ? 20 * Math.log10(rms) : -Infinity,
        frames: frames,
        sampleRate: audioCtx.sampleRate,
      };
    },

    async rtpStats(id) {
      const call = getCall(id);
      const pc = pcOf(call);
      if (!pc) return { connectionState: null, inbound: null, outbound: null, codec: null };
      const report = await pc.getStats();
      const byId = new Map();
      report.forEach((s) => byId.set(s.id, s));
      let inbound = null, outbound = null, pair = null;
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') inbound = s;
        if (s.type === 'outbound-rtp' && s.kind === 'audio') outbound = s;
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
      });
      const pick = (s, keys) => {
        if (!s) return null;
        const o = {};
        for (const k of keys) o[k] = s[k] === undefined ? null : s[k];
        return o;
      };
      const codec = inbound && inbound.codecId && byId.get(inbound.codecId);
      return {
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        inbound: pick(inbound, ['packetsReceived', 'bytesReceived', 'packetsLost', 'jitter', 'audioLevel',
                                'totalAudioEnergy', 'totalSamplesReceived', 'concealedSamples', 'ssrc']),
        outbound: pick(outbound, ['packetsSent', 'bytesSent', 'ssrc']),
        codec: codec ? { mimeType: codec.mimeType, clockRate: codec.clockRate, payloadType: codec.payloadType } : null,
        candidatePair: pick(pair, ['state', 'currentRoundTripTime', 'localCandidateId', 'remoteCandidateId']),
      };
    },

    // Drop the SDK's current websocket from the browser side (the SDK sees an ordinary close).
    closeSocket(code, reason) {
      const ws = sockets.filter((s) => s.readyState === NativeWebSocket.OPEN || s.readyState === NativeWebSocket.CONNECTING).pop();
      if (!ws) return false;
      ws.close(code || 4000, reason || 'harness close_socket');
      return true;
    },
  };

  window.addEventListener('error', (e) => emit('page.error', { message: String(e.message) }));
  window.addEventListener('unhandledrejection', (e) => emit('page.error', { message: String(e.reason && e.reason.message || e.reason) }));
})();
