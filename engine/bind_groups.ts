// The runtime's bind-group cache. A training step binds mostly the same pool buffers every
// step, and createBindGroup is a large part of the JavaScript time of recording a step (Dawn
// validates every entry; bench: train_step.* host time). Keys name buffers (and texture views)
// by an id per object, so a destroyed buffer's groups can never be hit again; they are dropped
// when the pool destroys it (so they do not pile up), and the least recently used beyond
// BIND_GROUP_CACHE_SIZE. Flag bindGroupCache (VQ_BIND_GROUP_CACHE=0) turns the cache off.

/** Cached bind groups at most. */
const BIND_GROUP_CACHE_SIZE = 4096;

/** What a bind group's cache key needs of its pipeline: its layout and an id per pipeline build. */
export interface PipelineLayoutRef {
  layout: GPUBindGroupLayout;
  id: number;
}

export class BindGroupCache {
  private groups = new Map<string, { group: GPUBindGroup; resources: number[] }>();
  private groupsByResource = new Map<number, Set<string>>();
  private resourceIds = new WeakMap<GPUBuffer | GPUTextureView, number>();
  private nextResourceId = 1;
  /** Bind groups created and reused so far (for tests and profiling). */
  readonly stats = { created: 0, reused: 0 };

  constructor(
    private readonly device: GPUDevice,
    /** Whether groups are reused (else one is created per dispatch). */
    public enabled: boolean,
  ) {}

  /** Cached bind groups now. */
  get size(): number {
    return this.groups.size;
  }

  /** The bind group of `resources` (bound at 0..n-1) for pipeline `p`, from the cache when it has it. */
  get(p: PipelineLayoutRef, resources: (GPUBufferBinding | GPUTextureView)[], label: string): GPUBindGroup {
    const create = () => {
      this.stats.created++;
      return this.device.createBindGroup({ layout: p.layout, entries: resources.map((resource, binding) => ({ binding, resource })), label });
    };
    if (!this.enabled) return create();
    const ids = resources.map((r) => this.resourceId('buffer' in r ? r.buffer : r));
    let key = `${p.id}`;
    resources.forEach((r, i) => (key += 'buffer' in r ? `|${ids[i]}@${r.offset ?? 0}+${r.size ?? -1}` : `|${ids[i]}`));
    const hit = this.groups.get(key);
    if (hit) {
      this.stats.reused++;
      // Move to the back: the map's order is least recently used first.
      this.groups.delete(key);
      this.groups.set(key, hit);
      return hit.group;
    }
    const group = create();
    const held = [...new Set(ids)];
    this.groups.set(key, { group, resources: held });
    for (const id of held) {
      let keys = this.groupsByResource.get(id);
      if (!keys) this.groupsByResource.set(id, (keys = new Set()));
      keys.add(key);
    }
    if (this.groups.size > BIND_GROUP_CACHE_SIZE) this.drop(this.groups.keys().next().value!);
    return group;
  }

  /** Drops every cached bind group that holds `r` (called before a buffer or texture is destroyed). */
  forget(r: GPUBuffer | GPUTextureView): void {
    const id = this.resourceIds.get(r);
    if (id === undefined) return;
    for (const key of [...(this.groupsByResource.get(id) ?? [])]) this.drop(key);
  }

  private resourceId(r: GPUBuffer | GPUTextureView): number {
    let id = this.resourceIds.get(r);
    if (id === undefined) this.resourceIds.set(r, (id = this.nextResourceId++));
    return id;
  }

  private drop(key: string): void {
    const entry = this.groups.get(key);
    if (!entry) return;
    this.groups.delete(key);
    for (const id of entry.resources) {
      const keys = this.groupsByResource.get(id);
      keys?.delete(key);
      if (keys?.size === 0) this.groupsByResource.delete(id);
    }
  }
}
