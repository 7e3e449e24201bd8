// Every topic and group the suite uses: created in one admin call before the tests run.
export const TOPICS = {
  normal: 'NORMAL',
  fifo: 'FIFO',
  fifo_hold: 'FIFO',
  delay: 'DELAY',
  tx: 'TRANSACTION',
  invisible: 'NORMAL',
  redeliver: 'NORMAL',
  dlq: 'NORMAL',
  tls: 'NORMAL',
};

export const GROUPS = {
  normal: { retries: 16 },
  fifo: { orderly: true, retries: 2 },
  fifo_hold: { orderly: true, retries: 2 },
  delay: { retries: 16 },
  tx: { retries: 16 },
  invisible: { retries: 16 },
  redeliver: { retries: 16 },
  dlq: { retries: 2 },
  dlq_reader: { retries: 16 },
  tls_plain: { retries: 16 },
  tls_tls: { retries: 16 },
};

export function topicName(key, suffix = process.env.V5_SUFFIX) {
  if (!(key in TOPICS)) throw new Error(`unknown topic ${key}`);
  return `NodeV5_${key}_${suffix}`;
}

export function groupName(key, suffix = process.env.V5_SUFFIX) {
  if (!(key in GROUPS)) throw new Error(`unknown group ${key}`);
  return `NodeV5G_${key}_${suffix}`;
}
