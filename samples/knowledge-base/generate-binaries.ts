import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import iconv from 'iconv-lite';
import { minimalPdf } from '../../test/support/minimal-pdf.js';

// Writes the sample's two binary documents from readable text: the GBK-encoded security
// policy (as a Chinese Windows editor saves it) and the attendance policy as a PDF.

const docs = path.join(path.dirname(fileURLToPath(import.meta.url)), 'docs');

const security = `星澜科技信息安全规定

一、数据分级
公司数据分为公开、内部、机密三级。客户资料、源代码和财务数据属于机密数据。

二、设备与存储
禁止将机密数据拷贝到个人电脑、个人网盘或未加密的U盘。外出办公必须使用公司配发的加密U盘，丢失后须在两小时内报告信息安全部。

三、账号与密码
系统密码至少十二位，须包含字母、数字和符号，每九十天更换一次。严禁与他人共用账号。

四、安全事件
发现钓鱼邮件、病毒或数据泄露迹象时，立即拨打内线 8110 报告信息安全部，不要自行处理。
`;
writeFileSync(
  path.join(docs, 'it', 'information-security.txt'),
  iconv.encode(security.replace(/\n/g, '\r\n'), 'gbk'),
);

const attendance = [
  [
    '星澜科技考勤制度',
    '一、员工每日上下班须在门禁系统刷卡，作为考勤依据。',
    '二、上午九点零五分后刷卡记为迟到，每月迟到超过三次的，按旷工半天处理。',
  ],
  ['三、因外出办事无法刷卡的，须在当日提交外勤登记。', '四、连续旷工三天及以上的，公司可依法解除劳动合同。'],
];
writeFileSync(path.join(docs, 'hr', 'attendance.pdf'), minimalPdf(attendance, '星澜科技考勤制度'));
console.log(
  'wrote',
  path.join(docs, 'it', 'information-security.txt'),
  'and',
  path.join(docs, 'hr', 'attendance.pdf'),
);
