/** `--demo`: a lossy link between two private namespaces with a bounded bulk transfer running over it,
 * so a fresh machine shows real retransmits. Everything is created here and removed by stop(). */
import { NetnsPair } from './netns.js';

export interface Demo {
  pair: NetnsPair;
  /** Starts transfers in the background until stop(). */
  run(): void;
  stop(): Promise<void>;
}

export const DEMO_PORT = 5001;
export const DEMO_LOSS_PERCENT = 3;

export async function startDemo(): Promise<Demo> {
  const pair = await NetnsPair.create('demo');
  await pair.addLoss(DEMO_LOSS_PERCENT, DEMO_PORT);
  await pair.startServer(DEMO_PORT);
  process.stderr.write(`netbpf demo: namespaces ${pair.a} -> ${pair.b}, ${DEMO_LOSS_PERCENT}% loss on port ${DEMO_PORT} (nftables), bulk transfers to ${pair.addrB} and ${pair.addr6B}\n`);
  let running = true;
  let loop: Promise<void> = Promise.resolve();
  return {
    pair,
    run() {
      loop = (async () => {
        for (let i = 0; running && i < 1000; i++) {
          await pair.client(i % 2 ? pair.addr6B : pair.addrB, DEMO_PORT, { bytes: 4_000_000, conns: 2, parallel: 2 }).catch(() => undefined);
        }
      })();
    },
    async stop() {
      running = false;
      await pair.destroy();
      await loop;
    },
  };
}
