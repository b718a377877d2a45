import type { PromptItem } from './types.js';

// A Chinese dialogue set written for qwenops load tests: the kinds of requests a Qwen chat
// service behind a company help desk and knowledge base receives, from one-line greetings
// to long documents to summarise and multi-turn conversations. Lengths are deliberately
// spread (two characters to several hundred) so prefill cost varies as in real traffic.
// Every text here was written for this project.

const SYSTEM_ASSISTANT = '你是一家物流公司的智能客服助手。回答要简洁、礼貌;不确定的内容请直接说明不知道。';
const SYSTEM_OPS = '你是资深的运维工程师,熟悉 Kubernetes、GPU 推理服务和监控告警。请给出可执行的步骤。';
const SYSTEM_RAG =
  '你是企业知识库问答助手。只根据“参考资料”中的内容回答;资料里没有的信息,请回答“我不知道”,不要编造。';

const LONG_INCIDENT_LOG = `以下是昨晚推理集群的值班记录,请整理成一份事故复盘摘要,包括时间线、影响范围、根因推测和后续改进项。

21:02 告警:模型服务 qwen-chat 的 P99 延迟从 240 毫秒升到 1.8 秒,持续五分钟。
21:04 值班同学查看监控面板,发现等待队列长度从个位数涨到两百多,GPU 利用率反而从 75% 下降到 40%。
21:07 检查最近变更:20:55 有一次配置发布,把最大批处理序列数从 256 调成了 64,同时开启了前缀缓存。
21:10 发现其中两台节点的显存占用接近上限,KV 缓存使用率一直在 98% 以上,出现大量请求被抢占后重新计算。
21:15 决定回滚配置。回滚通过灰度流程进行,先切 10% 流量观察。
21:22 10% 流量上的延迟恢复正常,逐步放大到 100%。
21:31 全部恢复,P99 回到 250 毫秒左右。期间约有 3% 的请求超时,客服渠道收到十几条用户反馈。
21:40 初步判断:批处理上限调低后吞吐下降,叠加晚高峰流量,队列积压;前缀缓存与显存配置不匹配,导致缓存频繁淘汰。
备注:本次发布没有经过压测,变更单中也没有写明回滚方案。`;

const LONG_POLICY_DOC = `参考资料:
《员工差旅报销规定(2024 修订版)》节选
第一条 出差前须在系统中提交出差申请,写明事由、地点、起止日期和预算,经直属主管审批后方可预订交通和住宿。
第二条 国内城市间交通:单程 800 公里以内优先选择高铁二等座;超过 800 公里或时间紧急时,可乘坐经济舱,需在申请中说明理由。
第三条 住宿标准:一线城市每晚不超过 600 元,其他城市每晚不超过 400 元。超出部分由个人承担,特殊情况需部门负责人书面批准。
第四条 餐补按天发放,每天 100 元,不再另行报销餐费;招待客户的餐费按业务招待流程单独申请。
第五条 报销须在行程结束后 30 天内提交,附电子发票和行程单。逾期未提交的,财务部有权不予受理。
第六条 因个人原因改签、退票产生的费用由个人承担。

问题:我下个月去上海出差三天,住的酒店每晚 650 元,多出来的钱公司能报吗?另外我在出差期间请客户吃了一顿饭,应该怎么报销?`;

const LONG_MEETING = `下面是一段产品评审会的录音转写,请提炼出会议结论和每个人的待办事项,用列表输出。

主持人(王敏):今天主要讨论知识库问答功能的上线计划。先请算法组说一下效果评估。
算法组(李强):我们用了一千两百条真实工单做评测,引用准确率是 87%,比上个版本提高了 6 个点。但有一类问题还是答不好,就是同时涉及两份文档的问题,比如既问报销标准又问审批流程。
产品(陈晓):这类问题在工单里占比多少?
李强:大概 15% 左右。
陈晓:那我建议第一版先上线,在界面上提示“复杂问题请转人工”,同时把这类问题收集起来做下一轮优化。
运维(赵磊):上线前我这边需要压测报告。现在的目标是峰值每秒 30 个请求,P99 延迟不超过 300 毫秒,我们还没有验证过。
王敏:压测什么时候能做完?
赵磊:如果下周一能拿到最终的服务配置,周三可以给出报告。
李强:配置周五之前就能定下来,量化版本的模型也会一起给过去。
王敏:好,那上线时间暂定下下周二。陈晓负责界面提示的需求文档,李强负责周五前交付模型和配置,赵磊周三前出压测报告,我来协调客服部门的培训。`;

export const BUILTIN_ZH_PROMPTS: readonly PromptItem[] = Object.freeze([
  { id: 'greet-1', messages: [{ role: 'user', content: '你好' }] },
  { id: 'greet-2', messages: [{ role: 'user', content: '在吗?想咨询一下。' }] },
  { id: 'thanks', messages: [{ role: 'user', content: '好的,谢谢你的帮助!' }] },
  {
    id: 'cs-track',
    messages: [
      { role: 'system', content: SYSTEM_ASSISTANT },
      { role: 'user', content: '我的快递三天了还显示在转运中心,怎么回事?' },
    ],
  },
  {
    id: 'cs-address',
    messages: [
      { role: 'system', content: SYSTEM_ASSISTANT },
      { role: 'user', content: '包裹已经发出来了,还能改收货地址吗?我搬家了,新地址在同一个城市。' },
    ],
  },
  {
    id: 'cs-damage',
    messages: [
      { role: 'system', content: SYSTEM_ASSISTANT },
      {
        role: 'user',
        content:
          '收到的箱子外面有明显压痕,打开后发现里面的陶瓷杯碎了一个。快递员已经走了,我当时没有当面验货,现在还能申请理赔吗?需要准备哪些材料?',
      },
    ],
  },
  {
    id: 'cs-multi-turn',
    messages: [
      { role: 'system', content: SYSTEM_ASSISTANT },
      { role: 'user', content: '我想寄一箱水果到成都,大概十公斤。' },
      { role: 'assistant', content: '好的。请问是新鲜水果吗?生鲜类需要选择冷链或加急服务,以免路上变质。' },
      { role: 'user', content: '是新鲜的橙子,不想太贵,普通快递可以吗?大概几天能到?' },
    ],
  },
  {
    id: 'cs-complaint',
    messages: [
      { role: 'system', content: SYSTEM_ASSISTANT },
      {
        role: 'user',
        content:
          '你们的派送员连续两次没打电话就把包裹放在驿站了,我白天上班根本没时间去取。我要投诉,另外希望以后能送货上门。',
      },
    ],
  },
  { id: 'fact-1', messages: [{ role: 'user', content: '中国的四大发明是哪些?' }] },
  {
    id: 'fact-2',
    messages: [{ role: 'user', content: '为什么秋天的树叶会变黄?请用小学生能听懂的话解释。' }],
  },
  {
    id: 'fact-3',
    messages: [{ role: 'user', content: '“三个臭皮匠,顶个诸葛亮”这句俗语是什么意思?举一个工作中的例子。' }],
  },
  {
    id: 'life-cook',
    messages: [
      { role: 'user', content: '家里只有鸡蛋、西红柿和一把青菜,晚饭能做点什么?给我两个简单的做法。' },
    ],
  },
  {
    id: 'life-travel',
    messages: [
      {
        role: 'user',
        content: '五一假期想带父母去杭州玩三天,老人腿脚不太方便,帮我安排一个轻松一点的行程,尽量少走路。',
      },
    ],
  },
  {
    id: 'life-health',
    messages: [{ role: 'user', content: '最近晚上总是睡不着,白天又犯困,有什么不吃药的调整办法?' }],
  },
  {
    id: 'write-notice',
    messages: [
      {
        role: 'user',
        content:
          '帮我写一则通知:本周六上午九点到十二点机房停电检修,期间内部系统无法访问,请大家提前保存工作。',
      },
    ],
  },
  {
    id: 'write-email',
    messages: [
      {
        role: 'user',
        content:
          '请帮我写一封邮件给合作方,说明由于原材料到货延迟,原定本月十五号的交付要推迟一周,表达歉意并说明我们的补救措施。语气正式但不要太生硬。',
      },
    ],
  },
  {
    id: 'write-poem',
    messages: [{ role: 'user', content: '以“深夜加班的程序员”为题,写一首四句的现代诗。' }],
  },
  {
    id: 'write-slogan',
    messages: [{ role: 'user', content: '给一家社区面包店想五条宣传标语,要温暖、接地气。' }],
  },
  {
    id: 'translate-1',
    messages: [
      {
        role: 'user',
        content: '把这句话翻译成英文:我们的模型在单张显卡上就能运行,延迟低于三百毫秒。',
      },
    ],
  },
  {
    id: 'translate-2',
    messages: [
      {
        role: 'user',
        content:
          '请把下面这段英文翻译成中文,专业术语保留英文原词:"Canary releases shift a small share of traffic to the new version, compare its error rate and latency with the stable version, and roll back automatically when a threshold is breached."',
      },
    ],
  },
  {
    id: 'code-1',
    messages: [{ role: 'user', content: '用 Python 写一个函数,判断一个字符串是不是回文,忽略大小写和空格。' }],
  },
  {
    id: 'code-2',
    messages: [
      {
        role: 'user',
        content:
          "下面这段 SQL 为什么很慢?SELECT * FROM orders WHERE DATE(created_at) = '2024-05-01' AND status = 'paid'; 表里有三千万行,created_at 上有索引。请说明原因并给出改写。",
      },
    ],
  },
  {
    id: 'code-3',
    messages: [
      { role: 'user', content: '解释一下 TypeScript 里 interface 和 type 的区别,什么时候该用哪个?' },
    ],
  },
  {
    id: 'ops-1',
    messages: [
      { role: 'system', content: SYSTEM_OPS },
      {
        role: 'user',
        content: 'Pod 一直处于 Pending 状态,事件里写着 Insufficient nvidia.com/gpu,应该怎么排查?',
      },
    ],
  },
  {
    id: 'ops-2',
    messages: [
      { role: 'system', content: SYSTEM_OPS },
      {
        role: 'user',
        content:
          '推理服务的首字延迟白天正常,一到晚高峰就翻倍,但 GPU 利用率只有百分之五十多。可能是什么原因?需要看哪些指标?',
      },
    ],
  },
  {
    id: 'ops-3',
    messages: [
      { role: 'system', content: SYSTEM_OPS },
      {
        role: 'user',
        content:
          '量化成 4 比特之后显存省了不少,但有用户反馈回答质量变差了。上线前应该怎么评估量化带来的质量损失?',
      },
    ],
  },
  {
    id: 'ops-incident-summary',
    messages: [
      { role: 'system', content: SYSTEM_OPS },
      { role: 'user', content: LONG_INCIDENT_LOG },
    ],
  },
  {
    id: 'rag-policy',
    messages: [
      { role: 'system', content: SYSTEM_RAG },
      { role: 'user', content: LONG_POLICY_DOC },
    ],
  },
  {
    id: 'rag-unknown',
    messages: [
      { role: 'system', content: SYSTEM_RAG },
      {
        role: 'user',
        content: '参考资料:公司年假为每年十五天,入职满一年后开始享受。\n\n问题:公司的年终奖一般什么时候发?',
      },
    ],
  },
  {
    id: 'meeting-minutes',
    messages: [{ role: 'user', content: LONG_MEETING }],
  },
  {
    id: 'reason-1',
    messages: [
      {
        role: 'user',
        content:
          '一个水池有进水管和出水管,单开进水管 6 小时注满,单开出水管 8 小时放完。两管同时开,多久能注满?写出步骤。',
      },
    ],
  },
  {
    id: 'reason-2',
    messages: [
      {
        role: 'user',
        content: '小张比小李大三岁,五年后两人年龄之和是四十一岁。两人现在各多少岁?',
      },
    ],
  },
  {
    id: 'advice-career',
    messages: [
      {
        role: 'user',
        content:
          '我做了五年后端开发,最近对大模型应用很感兴趣,但数学基础一般。想转方向的话,半年内应该按什么顺序学习?请结合实际项目给建议。',
      },
    ],
  },
  {
    id: 'multi-turn-plan',
    messages: [
      { role: 'user', content: '我们团队下季度要把客服机器人换成自己部署的大模型。' },
      { role: 'assistant', content: '明白。请问目前每天大概有多少咨询量?对响应速度和数据合规有什么要求?' },
      {
        role: 'user',
        content: '每天两万次左右,高峰在上午十点和晚上八点。数据不能出公司机房,回答要在一秒内开始输出。',
      },
      {
        role: 'assistant',
        content:
          '这个规模用一到两台带 24GB 显存的 GPU 服务器,部署量化后的 7B 对话模型一般就够了。还需要接入知识库吗?',
      },
      { role: 'user', content: '需要,知识库大概五千篇文档。请帮我列一个分阶段的上线计划,包括压测和灰度。' },
    ],
  },
  {
    id: 'classify',
    messages: [
      {
        role: 'user',
        content:
          '请把下面的用户留言分类为“咨询”“投诉”“表扬”之一,只输出类别:\n1. 客服小刘态度特别好,耐心帮我查了半小时。\n2. 运费怎么算的?\n3. 东西坏了三天没人理。',
      },
    ],
  },
  {
    id: 'extract',
    messages: [
      {
        role: 'user',
        content:
          '从这段话里提取姓名、电话和地址,用 JSON 输出:“您好,我是周文,电话 139 0000 1234,麻烦送到滨江区江南大道 88 号三楼前台。”',
      },
    ],
  },
  {
    id: 'rewrite',
    messages: [
      {
        role: 'user',
        content: '把这句话改得更委婉一些:“你们的方案完全不行,必须今天重新做一版。”',
      },
    ],
  },
  { id: 'short-q', messages: [{ role: 'user', content: '今天星期几?' }] },
  { id: 'short-joke', messages: [{ role: 'user', content: '讲个冷笑话。' }] },
]);
