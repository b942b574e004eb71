// Captures Chromium's WHIP (simulcast q/h/f) and WHEP offers into corpus/sdp_offer/.
// Run from tests/e2e (for playwright-core): cp ../../fuzz/chromium-offers.mjs . && node chromium-offers.mjs ../../fuzz/corpus/sdp_offer
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";
const b = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const p = await b.newPage();
const out = await p.evaluate(async () => {
  const whip = new RTCPeerConnection();
  whip.addTransceiver("audio", { direction: "sendonly" });
  whip.addTransceiver("video", { direction: "sendonly",
    sendEncodings: [{ rid: "q", scaleResolutionDownBy: 4 }, { rid: "h", scaleResolutionDownBy: 2 }, { rid: "f" }] });
  const o1 = await whip.createOffer(); await whip.setLocalDescription(o1);
  await new Promise(r => setTimeout(r, 500));
  const whep = new RTCPeerConnection();
  whep.addTransceiver("audio", { direction: "recvonly" });
  whep.addTransceiver("video", { direction: "recvonly" });
  const o2 = await whep.createOffer();
  return [whip.localDescription.sdp, o2.sdp];
});
const out_dir = process.argv[2] ?? new URL("corpus/sdp_offer", import.meta.url).pathname;
writeFileSync(out_dir + "/chromium_whip.sdp", out[0]);
writeFileSync(out_dir + "/chromium_whep.sdp", out[1]);
await b.close();
