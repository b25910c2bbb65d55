// The one owner of a backend's wasm linear memory: a first-fit allocator with coalescing, growth in
// large steps, and WasmTensor, the Float32Array that lives in that memory.
//
// Growing a non-shared WebAssembly.Memory detaches its old ArrayBuffer, and after the first detach
// V8 guards every typed-array access in the process (measured: plain JS loops 1.2-1.6x slower).
// So memory starts at 16 MiB, at least doubles when it grows, and freed blocks are reused.

const PAGE = 65536;
const MAX_PAGES = 65536; // wasm32: 4 GiB
const INITIAL_PAGES = 256; // 16 MiB
const ALIGN = 64; // cache line; also keeps v128 and f64 accesses aligned

interface Block {
  ptr: number;
  size: number;
}

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

export class WasmMemory {
  readonly memory: WebAssembly.Memory;
  /** Free blocks sorted by address; adjacent ones are always merged. */
  private readonly free: Block[] = [];
  private readonly used = new Map<number, number>();
  /** Blocks handed out since creation (a zero-copy call adds none). */
  allocations = 0;

  /** memory.buffer, cached: only grow() below changes it (the kernels never grow memory). */
  private current: ArrayBufferLike;

  /**
   * `shared`: a shared memory for the worker pool (threaded builds). It starts at the same 16 MiB and
   * grows the same way; growing it never detaches views (old ones keep their old length), and the
   * workers' instances see the new size at once.
   */
  constructor(readonly shared = false) {
    this.memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared });
    this.current = this.memory.buffer;
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

  release(ptr: number): void {
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
    this.current = this.memory.buffer;
    const grown = this.buffer.byteLength - end;
    if (tail) last.size += grown;
    else this.free.push({ ptr: end, size: grown });
    return this.free.length - 1;
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.buffer, ptr, length);
  }

  f64(ptr: number, length: number): Float64Array {
    return new Float64Array(this.buffer, ptr, length);
  }
}

/** A Float32Array that lives in a backend's wasm memory: passing it to the API avoids copies. */
export class WasmTensor {
  /** Byte address in wasm memory. */
  readonly ptr: number;
  readonly length: number;
  private readonly owner: WasmMemory;
  private view: Float32Array;
  private isFreed = false;

  constructor(owner: WasmMemory, length: number) {
    this.owner = owner;
    this.length = length;
    this.ptr = owner.alloc(length * 4, "alloc(length)");
    this.view = owner.f32(this.ptr, length);
  }

  /** A Float32Array view of the tensor, valid also after memory growth (re-read it after any call). */
  get data(): Float32Array {
    if (this.isFreed) throw new TypeError("WasmTensor: data of a freed tensor");
    if (this.view.buffer !== this.owner.buffer) this.view = this.owner.f32(this.ptr, this.length);
    return this.view;
  }

  get freed(): boolean {
    return this.isFreed;
  }

  /** Returns the memory to the allocator; the tensor is unusable afterwards. */
  free(): void {
    if (this.isFreed) return;
    this.isFreed = true;
    this.owner.release(this.ptr);
  }

  /** @internal */
  belongsTo(memory: WasmMemory): boolean {
    return this.owner === memory;
  }
}

/** The Float32Array behind a tensor: the array itself, or a WasmTensor's current view. */
export function dataOf(t: Float32Array | WasmTensor): Float32Array {
  return t instanceof WasmTensor ? t.data : t;
}
