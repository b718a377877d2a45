// The bundled vocabulary the simulator "generates" from: Chinese words and punctuation a
// Qwen chat answer about serving models might contain. Each entry counts as one token.
// Entries are JSON-escaped once here, so streaming a token is a string concatenation.

const WORDS = `模型 服务 部署 推理 量化 显存 吞吐 延迟 请求 响应 用户 问题 答案 知识 检索 向量 文档
数据 训练 评估 质量 指标 监控 告警 集群 节点 容器 镜像 版本 发布 灰度 流量 回滚 稳定 性能 优化 缓存
参数 配置 资源 调度 扩容 缩容 副本 负载 并发 队列 令牌 上下文 长度 生成 输出 输入 对话 系统 提示 温度
安全 过滤 审计 日志 记录 存储 对象 权限 密钥 网络 接口 协议 地址 端口 健康 检查 探针 就绪 存活 超时
重试 错误 异常 成功 失败 完成 开始 结束 阶段 步骤 流程 工作 任务 作业 计划 目标 结果 报告 分析 比较
基线 候选 提升 下降 保持 支持 使用 需要 可以 应该 能够 已经 正在 通过 根据 如果 因为 所以 但是 而且
同时 此外 首先 其次 最后 总之 例如 特别 主要 重要 关键 核心 基础 高效 可靠 简单 复杂 快速 准确 完整
我们 您 这个 那个 这些 每个 所有 一些 多个 相关 不同 相同 新的 旧的 当前 默认 最大 最小 平均 百分比
中文 英文 语言 理解 表达 内容 文本 句子 段落 标题 来源 引用 参考 说明 描述 方法 方式 策略 机制 原理
的 了 和 与 在 是 有 为 对 将 从 到 中 上 下 后 前 内 外 并 及 或 也 都 就 还 再 又 更 最 很 不 没有`;

const PUNCTUATION = ['，', '，', '。', '、', '；', '：'];

const words = WORDS.split(/\s+/).filter(Boolean);

/** Raw tokens; punctuation appears about once every 8 tokens. */
export const VOCABULARY: readonly string[] = Object.freeze([...words, ...PUNCTUATION]);

/** JSON string literal of each token (quotes included), built once. */
export const VOCABULARY_JSON: readonly string[] = Object.freeze(VOCABULARY.map((t) => JSON.stringify(t)));

export const WORD_COUNT = words.length;
export const PUNCTUATION_START = words.length;

// CJK Unified Ideographs (+ extension A) and CJK punctuation / fullwidth forms.
const CJK = /[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]/g;

/**
 * Estimated token count of a text, close to what Qwen's tokenizer gives: about one token
 * per Chinese character and one per four other non-space characters.
 * Unlike the other two: a cheap best guess of Qwen's count, the simulator's `usage` that cl100k checks.
 */
export function estimateQwenTokens(text: string): number {
  if (text.length === 0) return 0;
  const cjk = text.match(CJK)?.length ?? 0;
  let other = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 32 && c < 0x3000) other++;
  }
  return cjk + Math.ceil(other / 4);
}
