// The one owner of a backend's wasm linear memory: a first-fit allocator with coalescing, growth in
// large steps, and WasmTensor, the Float32Array that lives in that memory.
//
// Growing a non-shared WebAssembly.Memory detaches its old ArrayBuffer, and after the first detach
// V8 guards every typed-array access in the process (measured: plain JS loops 1.2-1.6x slower).
// So memory starts at 16 MiB, at least doubles when it grows, and freed blocks are reused.
//
// Each WasmTensor's block is also registered with a FinalizationRegistry, so a tensor dropped
// without free() is reclaimed when it is garbage-collected; free() is the deterministic way.

const PAGE = 65536;
const MAX_PAGES = 65536; // wasm32: 4 GiB
const INITIAL_PAGES = 256; // 16 MiB
const ALIGN = 64; // cache line; also keeps v128 and f64 accesses aligned

interface Block {
  ptr: number;
  size: number;
}

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/** The part of a WebAssembly.Memory used here (declared so the public types need no DOM lib). */
export interface LinearMemory {
  readonly buffer: ArrayBuffer;
  grow(delta: number): number;
}

export class WasmMemory {
  readonly memory: LinearMemory;
  /** Free blocks sorted by address; adjacent ones are always merged. */
  private readonly free: Block[] = [];
  private readonly used = new Map<number, number>();
  /** WasmTensor blocks: address -> bytes of data (the blocks Float32Array views may point into). */
  private readonly tensors = new Map<number, number>();
  /** Buffers this memory had before it grew: detached (views of them get a clear error), or, shared, still valid. */
  private readonly earlier = new WeakSet<ArrayBufferLike>();
  /** Blocks handed out since creation (a zero-copy call adds none). */
  allocations = 0;

  /** memory.buffer, cached: only grow() below changes it (the kernels never grow memory). */
  private current: ArrayBufferLike;
  /** A Float32Array over all of `current`, to copy floats out without a view per copy. */
  private all: Float32Array;

  /**
   * `shared`: a shared memory for the worker pool (threaded builds). It starts at the same 16 MiB and
   * grows the same way; growing it never detaches views (old ones keep their old length), and the
   * workers' instances see the new size at once.
   */
  constructor(readonly shared = false) {
    this.memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared });
    this.current = this.memory.buffer;
    this.all = new Float32Array(this.current);
  }

  /** Hands the memory above the module's own data (`heapBase`) to the allocator; called once. */
  start(heapBase: number): void {
    const start = align(Math.max(heapBase, ALIGN));
    this.free.push({ ptr: start, size: this.buffer.byteLength - start });
  }

  get buffer(): ArrayBufferLike {
    return this.current;
  }

  /** Bytes of linear memory in use by live blocks. */
  get bytesInUse(): number {
    let total = 0;
    for (const size of this.used.values()) total += size;
    return total;
  }

  /** Bytes of the largest free block: the most one allocation can take without growing memory. */
  get largestFree(): number {
    let largest = 0;
    for (const b of this.free) largest = Math.max(largest, b.size);
    return largest;
  }

  /** Allocates `bytes` (rounded up to 64) and returns the address; throws RangeError when wasm32 cannot hold it. */
  alloc(bytes: number, what = "tensor"): number {
    const size = align(Math.max(bytes, 1));
    let i = this.free.findIndex((b) => b.size >= size);
    if (i < 0) i = this.grow(size, what);
    const block = this.free[i];
    const ptr = block.ptr;
    if (block.size === size) this.free.splice(i, 1);
    else {
      block.ptr += size;
      block.size -= size;
    }
    this.used.set(ptr, size);
    this.allocations++;
    return ptr;
  }

  /** Allocates the block of a WasmTensor of `length` floats (views of it are accepted as zero-copy operands). */
  allocTensor(length: number): number {
    const ptr = this.alloc(length * 4, "alloc(length)");
    this.tensors.set(ptr, length * 4);
    return ptr;
  }

  /** Whether bytes [start, start + bytes) lie inside one live WasmTensor's data. */
  inTensor(start: number, bytes: number): boolean {
    for (const [ptr, size] of this.tensors) if (start >= ptr && start + bytes <= ptr + size) return true;
    return false;
  }

  /** Whether `buffer` is one this memory had before it grew (detached unless the memory is shared). */
  grewFrom(buffer: ArrayBufferLike): boolean {
    return this.earlier.has(buffer);
  }

  /** Copies `bytes` from address `src` to `dst` (the ranges may overlap). */
  copy(dst: number, src: number, bytes: number): void {
    new Uint8Array(this.buffer).copyWithin(dst, src, src + bytes);
  }

  release(ptr: number): void {
    this.tensors.delete(ptr);
    const size = this.used.get(ptr);
    if (size === undefined) return;
    this.used.delete(ptr);
    let i = 0;
    while (i < this.free.length && this.free[i].ptr < ptr) i++;
    this.free.splice(i, 0, { ptr, size });
    const next = this.free[i + 1];
    if (next && ptr + size === next.ptr) {
      this.free[i].size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.ptr + prev.size === ptr) {
      prev.size += this.free[i].size;
      this.free.splice(i, 1);
    }
  }

  /** Grows so that a free block of `size` exists; returns its index in `free`. */
  private grow(size: number, what: string): number {
    const end = this.buffer.byteLength;
    const last = this.free[this.free.length - 1];
    const tail = last && last.ptr + last.size === end ? last.size : 0;
    const pages = end / PAGE;
    const needed = Math.ceil((size - tail) / PAGE);
    const wanted = Math.min(Math.max(needed, pages), MAX_PAGES - pages);
    if (needed > MAX_PAGES - pages) {
      throw new RangeError(
        `${what}: ${size} bytes do not fit in wasm32 memory (4 GiB, ${end - tail} bytes in use or fragmented)`,
      );
    }
    try {
      this.memory.grow(wanted);
    } catch {
      try {
        this.memory.grow(needed);
      } catch {
        throw new RangeError(`${what}: the engine refused to grow wasm memory to hold ${size} more bytes`);
      }
    }
    this.earlier.add(this.current);
    this.current = this.memory.buffer;
    this.all = new Float32Array(this.current);
    const grown = this.buffer.byteLength - end;
    if (tail) last.size += grown;
    else this.free.push({ ptr: end, size: grown });
    return this.free.length - 1;
  }

  /** The floats of an operand: a view at a wasm address (in the current buffer), or the Float32Array itself. */
  floats(op: number | Float32Array, length: number): Float32Array {
    return typeof op === "number" ? this.f32(op, length) : op;
  }

  /** A copy of `length` floats at `ptr`, in an ArrayBuffer of its own. */
  copyOut(ptr: number, length: number): Float32Array {
    return this.all.slice(ptr >> 2, (ptr >> 2) + length);
  }

  /** A copy of `length` floats at `ptr` as a plain array (no ArrayBuffer to allocate). */
  numbers(ptr: number, length: number): number[] {
    const out = new Array<number>(length);
    for (let i = 0, p = ptr >> 2; i < length; i++) out[i] = this.all[p + i];
    return out;
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.buffer, ptr, length);
  }

  f64(ptr: number, length: number): Float64Array {
    return new Float64Array(this.buffer, ptr, length);
  }
}

/** Releases the block of a WasmTensor that was garbage-collected without free(). */
const reclaim = new FinalizationRegistry<{ owner: WasmMemory; ptr: number }>(({ owner, ptr }) => owner.release(ptr));

/** Keeps a WasmTensor alive as long as a `data` view of it is reachable (its block must not be reclaimed under the view). */
const viewOwner = new WeakMap<Float32Array, WasmTensor>();

/**
 * A tensor of float32 values that lives in a backend's wasm memory (from `bn.alloc(length)`):
 * passing it, or a Float32Array view inside it, to the API avoids every tensor-sized copy.
 * `free()` returns its memory; a tensor dropped without `free()` is reclaimed when garbage-collected
 * (while a `data` view of it is reachable, the tensor is too).
 *
 * @example
 * const t = bn.alloc(1024);
 * t.data.set(values);          // write through the view
 * bn.batchNorm(t, { shape: [8, 128], out: t });
 * console.log(t.data[0]);      // re-read `data` after calls: growth replaces the view
 * t.free();
 */
export class WasmTensor {
  /** Byte address in wasm memory (64-byte aligned). */
  readonly ptr: number;
  /** Number of floats. */
  readonly length: number;
  private readonly owner: WasmMemory;
  private view: Float32Array;
  private isFreed = false;

  /** @internal use `bn.alloc(length)` */
  constructor(owner: WasmMemory, length: number) {
    this.owner = owner;
    this.length = length;
    this.ptr = owner.allocTensor(length);
    this.view = this.newView();
    reclaim.register(this, { owner, ptr: this.ptr }, this);
  }

  /**
   * A Float32Array view of the tensor's memory. Growing wasm memory (any call that allocates may)
   * detaches earlier views, so re-read `data` after calls rather than keeping a view.
   * @throws {TypeError} after `free()`.
   */
  get data(): Float32Array {
    if (this.isFreed) throw new TypeError("WasmTensor: data of a freed tensor");
    if (this.view.buffer !== this.owner.buffer) this.view = this.newView();
    return this.view;
  }

  /** Whether `free()` was called. */
  get freed(): boolean {
    return this.isFreed;
  }

  /** Returns the memory to the allocator now (calling it again does nothing); the tensor is unusable afterwards. */
  free(): void {
    if (this.isFreed) return;
    this.isFreed = true;
    reclaim.unregister(this);
    this.owner.release(this.ptr);
  }

  /** @internal */
  belongsTo(memory: WasmMemory): boolean {
    return this.owner === memory;
  }

  private newView(): Float32Array {
    const view = this.owner.f32(this.ptr, this.length);
    viewOwner.set(view, this);
    return view;
  }
}
