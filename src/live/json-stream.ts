/** Writing JSON arrays element by element, so an artifact never has to exist whole in memory. */

export async function* jsonArray(items: Iterable<unknown> | AsyncIterable<unknown>): AsyncGenerator<string> {
  let first = true;
  yield '[';
  for await (const item of items) {
    yield `${first ? '\n' : ',\n'}${JSON.stringify(item)}`;
    first = false;
  }
  yield first ? ']\n' : '\n]\n';
}

/**
 * An object whose last key is a streamed array: `{"a":1,...,"<key>":[ ...items ]}`.
 */
export async function* jsonObjectWithArray(head: Record<string, unknown>, key: string, items: Iterable<unknown> | AsyncIterable<unknown>): AsyncGenerator<string> {
  const prefix = JSON.stringify(head);
  yield `${prefix.slice(0, -1)}${prefix === '{}' ? '' : ','}${JSON.stringify(key)}:`;
  yield* jsonArray(items);
  yield '}\n';
}

export async function* toAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}
